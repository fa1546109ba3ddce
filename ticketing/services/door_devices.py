"""Door phones: registering one (its token shown once, stored hashed), authenticating and revoking
it. Locks nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from core.transactions import service_transaction
from ticketing.models import (
    DoorDevice,
)
from ticketing.selectors import (
    door_device_by_token_hash,
)
from ticketing.services.errors import NotAllowed


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def door_device_register(*, user, name: str, now: datetime) -> tuple[DoorDevice, str]:
    """A phone signs in at a door; the token (shown once) lets it sync even after the session ends.

    :raises NotAllowed: the user may not check tickets in.
    """
    if not user.has_perm("ticketing.scan_tickets"):
        raise NotAllowed("Your account cannot check tickets in. Ask a manager for door access.")
    name = name.strip()[:80] or "Door"
    token = secrets.token_urlsafe(32)
    with service_transaction():
        device = DoorDevice.objects.create(
            name=name, user=user, token_hash=_token_hash(token), created_at=now
        )
    return device, token


def door_device_authenticate(*, token: str, now: datetime) -> DoorDevice | None:
    """The device with this token, if it is still allowed in (not revoked, user still on the door team)."""
    device = door_device_by_token_hash(token_hash=_token_hash(token))
    if device is None or not device.user_can_scan:
        return None
    if device.last_seen_at is None or (now - device.last_seen_at).total_seconds() > 60:
        DoorDevice.objects.filter(pk=device.pk).update(last_seen_at=now)
    return device


def door_device_revoke(*, device: DoorDevice, now: datetime) -> None:
    DoorDevice.objects.filter(pk=device.pk, revoked_at__isnull=True).update(revoked_at=now)
