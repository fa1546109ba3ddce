"""The QR payload: "B1." + base64url(version, ticket id, session id) + "." + base64url(Ed25519 signature).

About a hundred characters: a version 6–7 QR code, readable from a phone screen at arm's length.
Door devices check it with the event's public key alone; the server checks it the same way.
"""

import base64
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

PREFIX = "B1"
_MESSAGE = struct.Struct(">BII")  # version, ticket id, session id
VERSION = 1


class BadPayload(ValueError):
    """Not a ticket of ours: unreadable, altered, or signed with another key."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key_pair() -> tuple[bytes, bytes]:
    """(private, public), both raw 32 bytes."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    raw_public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return raw_private, raw_public


def sign(*, private_key: bytes, ticket_id: int, session_id: int) -> str:
    message = _MESSAGE.pack(VERSION, ticket_id, session_id)
    signature = Ed25519PrivateKey.from_private_bytes(private_key).sign(message)
    return f"{PREFIX}.{_b64(message)}.{_b64(signature)}"


def read(payload: str) -> tuple[int, int, bytes, bytes]:
    """(ticket id, session id, message, signature) of a payload, without checking the signature.

    :raises BadPayload: when it is not shaped like one of our payloads.
    """
    try:
        prefix, message_text, signature_text = payload.strip().split(".")
        message, signature = _unb64(message_text), _unb64(signature_text)
        version, ticket_id, session_id = _MESSAGE.unpack(message)
    except (ValueError, struct.error) as error:
        raise BadPayload("Not a ticket code.") from error
    if prefix != PREFIX or version != VERSION or len(signature) != 64:
        raise BadPayload("Not a ticket code.")
    return ticket_id, session_id, message, signature


def verify(*, payload: str, public_key: bytes) -> tuple[int, int]:
    """(ticket id, session id) of a genuine payload.

    :raises BadPayload: unreadable, altered, or not signed with this key.
    """
    ticket_id, session_id, message, signature = read(payload)
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public_key)).verify(signature, message)
    except InvalidSignature:
        raise BadPayload("The code is not genuine.") from None
    return ticket_id, session_id


def public_key_b64(public_key: bytes) -> str:
    return base64.b64encode(bytes(public_key)).decode()
