"""Holds that run out: a held booking past `hold_expires_at` is expired and its places or time
released, lazily by whoever next locks the same capacity, by its own task, and by the periodic sweep.
Locks each expired hold only if nobody else is working on it (`lock_bookings_if_free`: the caller may
hold capacity rows already), then the session counters it releases.
"""

from __future__ import annotations

from datetime import datetime

from booking import timeline
from booking.locks import lock_bookings_if_free
from booking.models import (
    HOLDING_STATUSES,
    Booking,
    BookingStatus,
    WaitlistEntry,
)
from booking.services._shared import ITEM_HOLDER_PREFIX, _announce, _places_of
from booking.states import check_transition
from core.outbox.services import outbox_enqueue
from core.transactions import service_transaction
from inventory.capacity import (
    appointment_holders_overlapping,
    appointment_time_release,
    session_places_release,
)
from inventory.locks import lock_session_counters
from inventory.models import CapacityCounter, Session

# --- lazy release of expired holds --------------------------------------------------------------


def _expire_locked(
    booking: Booking, *, now: datetime, lazily: bool, counters: list[CapacityCounter] | None = None
) -> None:
    """Expire a locked, holding booking and give its places back (capacity rows already locked)."""
    check_transition(booking.status, BookingStatus.EXPIRED)
    places, holders = _places_of(booking)
    if booking.session_id:
        session_places_release(counters=counters, places=places, holders=holders, was_sold=False)
    else:
        appointment_time_release(holders=holders)
    booking.status = BookingStatus.EXPIRED
    booking.updated_at = now
    booking.save(update_fields=["status", "updated_at"])
    entry = WaitlistEntry.objects.filter(offer=booking, status=WaitlistEntry.Status.OFFERED).first()
    if entry is not None:
        entry.status = WaitlistEntry.Status.LAPSED
        entry.updated_at = now
        entry.save(update_fields=["status", "updated_at"])
    timeline.hold_expired(booking, now=now, lazily=lazily)
    _announce("booking.expired", booking, now)
    if booking.session_id:
        outbox_enqueue(topic="session.places_freed", payload={"session_id": booking.session_id}, now=now)


def _release_expired_on_session(
    session: Session, counters: list[CapacityCounter], now: datetime
) -> list[CapacityCounter]:
    """Expire holds on this session that ran out, under the counter locks we already hold."""
    expired_ids = list(
        Booking.objects.filter(
            session=session, status__in=HOLDING_STATUSES, hold_expires_at__lte=now
        ).values_list("pk", flat=True)
    )
    if not expired_ids:
        return counters
    for booking in lock_bookings_if_free(booking_ids=expired_ids):
        if booking.is_holding and booking.hold_expires_at <= now:
            _expire_locked(booking, now=now, lazily=True, counters=counters)
    # Re-read the locked rows: the releases changed them behind the objects we hold.
    return list(CapacityCounter.objects.filter(pk__in=[c.pk for c in counters]).order_by("pk"))


def _release_expired_on_resources(
    resource_ids: list[int], span: tuple[datetime, datetime], now: datetime
) -> None:
    holders = appointment_holders_overlapping(resource_ids=resource_ids, starts_at=span[0], ends_at=span[1])
    item_ids = [int(h.removeprefix(ITEM_HOLDER_PREFIX)) for h in holders if h.startswith(ITEM_HOLDER_PREFIX)]
    if not item_ids:
        return
    expired_ids = list(
        Booking.objects.filter(
            items__pk__in=item_ids, status__in=HOLDING_STATUSES, hold_expires_at__lte=now
        ).values_list("pk", flat=True)
    )
    for booking in lock_bookings_if_free(booking_ids=expired_ids):
        if booking.is_holding and booking.hold_expires_at <= now:
            _expire_locked(booking, now=now, lazily=True)


def booking_expire(*, booking_id: int, now: datetime) -> bool:
    """Release an expired hold (the task at expiry and the sweeper call this). True if it expired it."""
    with service_transaction():
        locked = lock_bookings_if_free(booking_ids=[booking_id])
        if not locked:
            return False  # someone is confirming or expiring it right now
        booking = locked[0]
        if not booking.is_holding or booking.hold_expires_at > now:
            return False
        counters = None
        if booking.session_id:
            counters = lock_session_counters(session_ids=[booking.session_id])[booking.session_id]
        _expire_locked(booking, now=now, lazily=False, counters=counters)
        return True


def hold_release_expired(*, now: datetime, limit: int = 500) -> int:
    """Release every hold that ran out (the periodic safety net behind the per-hold task)."""
    ids = list(
        Booking.objects.filter(status__in=HOLDING_STATUSES, hold_expires_at__lte=now)
        .order_by("hold_expires_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(booking_expire(booking_id=booking_id, now=now) for booking_id in ids)
