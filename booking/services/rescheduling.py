"""Moving a booking to another session or time, and the times it may move to. Locks the booking, then
the capacity of both the old and the new time, in key order.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from booking import timeline
from booking.locks import lock_booking
from booking.models import (
    SOLD_STATUSES,
    Booking,
    BookingItem,
    BookingStatus,
)
from booking.selectors import (
    booking_customer_reschedule_refusal,
)
from booking.services._shared import (
    _announce,
    _check_session_window,
    _invite_changed,
    _places_of,
)
from booking.services.errors import InvalidBooking, NotAllowed
from booking.services.expiry import _release_expired_on_resources, _release_expired_on_session
from booking.services.holds import _check_appointment, _seat_where_needed
from core.outbox.services import outbox_enqueue
from core.transactions import service_transaction
from inventory.capacity import (
    appointment_candidate_resource_ids,
    appointment_time_take,
    session_places_release,
    session_places_take,
)
from inventory.locks import lock_resource_units, lock_session_counters
from inventory.models import Allocation, Offering, Session

# --- rescheduling -------------------------------------------------------------------------------


def booking_reschedule(
    *,
    booking: Booking,
    now: datetime,
    by_customer: bool,
    new_starts_at: datetime | None = None,
    new_session: Session | None = None,
    acting_user=None,
    actor: str | None = None,
) -> Booking:
    """Move a booking to another slot or session in one transaction: the new places are taken and the
    old ones released together, or nothing changes.

    :raises NotAllowed: the policy does not let the customer move it now (staff may).
    :raises InvalidBooking | SoldOut | SlotTaken | SeatTaken: the new time cannot be had.
    """
    offering = booking.offering
    if by_customer and (refusal := booking_customer_reschedule_refusal(booking=booking, now=now)):
        raise NotAllowed(refusal)
    if offering.kind == Offering.Kind.APPOINTMENT:
        if new_starts_at is None:
            raise InvalidBooking("Choose the new time.")
        _check_appointment(offering=offering, starts_at=new_starts_at, preferred=None, now=now)
    else:
        if new_session is None:
            raise InvalidBooking("Choose the new session.")
        if new_session.pk == booking.session_id:
            raise InvalidBooking("That is the session you are already booked on.")
        _check_session_window(offering=offering, session=new_session, now=now)
        if new_session.offering_id != offering.pk or new_session.status != Session.Status.SCHEDULED:
            raise InvalidBooking(f"That is not a session of {offering.name} you can move to.")

    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        if booking.status != BookingStatus.CONFIRMED and not booking.is_holding:
            raise InvalidBooking("Only a confirmed or held booking can be moved.")
        old = {"starts_at": booking.starts_at.isoformat(), "session_id": booking.session_id}
        places, holders = _places_of(booking)
        was_sold = booking.status in SOLD_STATUSES
        if booking.session_id:
            sessions = [booking.session_id, new_session.pk]
            locked = lock_session_counters(session_ids=sessions)
            session_places_release(
                counters=locked[booking.session_id], places=places, holders=holders, was_sold=was_sold
            )
            new_counters = _release_expired_on_session(new_session, locked[new_session.pk], now)
            items = list(booking.items.all())
            for item in items:
                item.seat_id = None  # seats are per session: new ones are found below
            BookingItem.objects.bulk_update(items, ["seat"])
            new_places = _seat_where_needed(new_session, items)
            session_places_take(
                session=new_session, counters=new_counters, places=new_places, sold=was_sold, now=now
            )
            booking.session = new_session
            booking.starts_at, booking.ends_at = new_session.starts_at, new_session.ends_at
        else:
            resource_ids = appointment_candidate_resource_ids(offering=offering)
            lock_resource_units(resource_ids=resource_ids)
            Allocation.objects.filter(holder__in=holders, is_active=True).delete()  # the old time, freed
            span = (
                new_starts_at - offering.buffer_before,
                new_starts_at + offering.duration + offering.buffer_after,
            )
            _release_expired_on_resources(resource_ids, span, now)
            appointment_time_take(
                offering=offering, starts_at=new_starts_at, holder=holders[0], preferred=None, now=now
            )
            booking.starts_at, booking.ends_at = new_starts_at, new_starts_at + offering.duration
        _invite_changed(booking, now, "session", "starts_at", "ends_at")
        actor = actor or ("customer" if by_customer else None)
        timeline.rescheduled(
            booking,
            now=now,
            acting_user=acting_user,
            actor=actor,
            previous=old,
            starts_at=booking.starts_at,
            session_id=booking.session_id,
        )
        _announce("booking.rescheduled", booking, now, previous_starts_at=old["starts_at"])
        if old["session_id"]:
            outbox_enqueue(topic="session.places_freed", payload={"session_id": old["session_id"]}, now=now)
    return booking


def reschedule_options(*, booking: Booking, now: datetime, days: int = 14) -> list:
    """Where a booking could move to: free appointment times or bookable sessions, not its own."""
    from inventory.selectors import appointment_slot_list, session_availability_list

    offering = booking.offering
    end = now + timedelta(days=days)
    if offering.kind == Offering.Kind.APPOINTMENT:
        return [
            s
            for s in appointment_slot_list(offering=offering, start=now, end=end, now=now)
            if s.starts_at != booking.starts_at
        ]
    needed = booking.items.count()
    return [
        s
        for s in session_availability_list(offering=offering, start=now, end=end, now=now)
        if s.session_id != booking.session_id and s.bookable and s.remaining >= needed
    ]
