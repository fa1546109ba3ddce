"""Confirming a hold (paid, free, or accepted from the waitlist), including a lapsed appointment
taken again; and the wait for a payment to settle. Locks the booking, then (for a late confirmation)
the capacity it needs again.
"""

from __future__ import annotations

from datetime import datetime

from booking import timeline
from booking.locks import lock_booking
from booking.models import (
    Booking,
    BookingStatus,
    WaitlistEntry,
)
from booking.services._shared import _announce, _places_of
from booking.services.errors import CapacityGone, NotAllowed
from booking.services.expiry import _release_expired_on_resources, _release_expired_on_session
from booking.services.resale import _take_over_resold_places
from booking.states import check_transition
from core.transactions import require_atomic, service_transaction
from inventory.capacity import (
    appointment_candidate_resource_ids,
    appointment_time_take,
    session_places_confirm,
    session_places_take,
)
from inventory.errors import SeatTaken, SlotTaken, SoldOut
from inventory.locks import lock_resource_units, lock_session_counters
from inventory.models import Allocation

# --- confirmation and expiry --------------------------------------------------------------------


def booking_confirm(
    *, booking: Booking, now: datetime, acting_user=None, actor: str = "system", data: dict | None = None
) -> Booking:
    """Confirm a booking: its held places become sold, in one locked transaction. Idempotent.

    A booking whose hold already expired and was released is booked again if its places are still
    free (a payment that landed late); otherwise `CapacityGone` is raised and nothing changes.
    """
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        if booking.status == BookingStatus.CONFIRMED:
            return booking
        _confirm_locked(booking, now=now, acting_user=acting_user, actor=actor, data=data or {})
    return booking


def _confirm_locked(booking: Booking, *, now, acting_user, actor, data) -> None:
    require_atomic("_confirm_locked")
    check_transition(booking.status, BookingStatus.CONFIRMED)
    places, holders = _places_of(booking)
    late = booking.status == BookingStatus.EXPIRED
    resales = [item for item in booking.items.all() if item.resale_of_id]
    if resales:
        _take_over_resold_places(booking, resales, now)
    elif booking.session_id:
        counters = lock_session_counters(session_ids=[booking.session_id])[booking.session_id]
        if late:
            counters = _release_expired_on_session(booking.session, counters, now)
            try:
                session_places_take(
                    session=booking.session,
                    counters=counters,
                    places=list(zip(places, holders, strict=True)),
                    sold=True,
                    now=now,
                )
            except (SoldOut, SeatTaken) as error:
                raise CapacityGone(f"The places were taken after the hold ran out: {error.message}") from None
        else:
            session_places_confirm(counters=counters, places=places)
    elif late:
        _retake_appointment(booking, holders, now)
    booking.status = BookingStatus.CONFIRMED
    booking.confirmed_at = now
    booking.hold_expires_at = None
    booking.updated_at = now
    booking.save(update_fields=["status", "confirmed_at", "hold_expires_at", "updated_at"])
    WaitlistEntry.objects.filter(offer=booking).update(status=WaitlistEntry.Status.BOOKED, updated_at=now)
    timeline.confirmed(booking, now=now, acting_user=acting_user, actor=actor, late=late, **data)
    _announce("booking.confirmed", booking, now)


def _retake_appointment(booking: Booking, holders: list[str], now: datetime) -> None:
    offering = booking.offering
    previous = list(
        Allocation.objects.filter(holder__in=holders).values_list("resource_id", flat=True).distinct()
    )
    resource_ids = appointment_candidate_resource_ids(offering=offering)
    lock_resource_units(resource_ids=resource_ids)
    span = (booking.starts_at - offering.buffer_before, booking.ends_at + offering.buffer_after)
    _release_expired_on_resources(resource_ids, span, now)
    Allocation.objects.filter(holder__in=holders).delete()  # the released rows, replaced below
    requirements = {r.pk: set(r.candidates.values_list("pk", flat=True)) for r in offering.requirements.all()}
    preferred = {rid: res for rid, cands in requirements.items() for res in previous if res in cands}
    try:
        appointment_time_take(
            offering=offering,
            starts_at=booking.starts_at,
            holder=holders[0],
            preferred=preferred or None,
            now=now,
        )
    except SlotTaken as error:
        raise CapacityGone(f"The time was taken after the hold ran out: {error.message}") from None


def booking_await_payment(*, booking: Booking, now: datetime, actor: str = "customer", **data) -> Booking:
    """The customer is paying: the hold now waits for the payment (it still expires on time)."""
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        if booking.status == BookingStatus.AWAITING_PAYMENT:
            return booking
        check_transition(booking.status, BookingStatus.AWAITING_PAYMENT)
        booking.status = BookingStatus.AWAITING_PAYMENT
        booking.updated_at = now
        booking.save(update_fields=["status", "updated_at"])
        timeline.status_changed(booking, now=now, actor=actor, **data)
        _announce("booking.awaiting_payment", booking, now)
    return booking


def booking_accept_offer(*, booking: Booking, now: datetime) -> Booking:
    """A customer takes a free place offered from the waitlist (a paid one is accepted by paying)."""
    if booking.total_amount:
        raise NotAllowed("This place is taken by paying for it.")
    if not booking.is_holding:
        raise NotAllowed("This offer is no longer open.")
    return booking_confirm(booking=booking, now=now, actor="customer", data={"accepted": "waitlist offer"})
