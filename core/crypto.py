"""Secrets at rest (calendar tokens, signing keys): Fernet with a key derived from configuration.

FIELD_ENCRYPTION_KEY is used when set (rotate SECRET_KEY without losing stored secrets); otherwise
the key is derived from SECRET_KEY. Derivation uses HKDF with a purpose label, so the same secret
never serves two purposes.
"""

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

__all__ = ["InvalidToken", "decrypt", "encrypt"]


@functools.cache
def _fernet(secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"booking field encryption").derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def _current() -> Fernet:
    return _fernet(settings.FIELD_ENCRYPTION_KEY or settings.SECRET_KEY)


def encrypt(data: bytes) -> bytes:
    return _current().encrypt(data)


def decrypt(token: bytes) -> bytes:
    """:raises InvalidToken: when the data was not encrypted with the configured key."""
    return _current().decrypt(bytes(token))
