"""Changing the names on a booking's places (and the tickets that carry them). Locks the booking."""

from __future__ import annotations

from datetime import datetime

from booking import timeline
from booking.locks import lock_booking
from booking.models import (
    Booking,
    BookingItem,
    BookingStatus,
)
from booking.services._shared import _announce
from booking.services.errors import InvalidBooking, NotAllowed
from core.hooks import hook_results
from core.transactions import service_transaction


def booking_attendees_update(
    *,
    booking: Booking,
    names: dict[int, str],
    now: datetime,
    by_customer: bool,
    emails: dict[int, str] | None = None,
    acting_user=None,
    actor: str | None = None,
) -> Booking:
    """Correct who is coming (a typo, a friend instead of another); old and new names are kept.

    *emails* (optional) changes where a place's own emails go (a ticket handed to someone else).

    :raises NotAllowed: the policy keeps names fixed, or the booking has started (for customers).
    :raises InvalidBooking: an empty name or a place not in this booking.
    """
    policy = booking.offering.cancellation_policy
    if by_customer and (policy is None or not policy.attendee_names_editable):
        raise NotAllowed("Names on this booking cannot be changed online. Please contact us.")
    if by_customer and (locked := hook_results("attendee_names_locked", booking=booking)):
        raise NotAllowed(locked[0])
    if by_customer and booking.starts_at <= now:
        raise NotAllowed("This has already started, so names can no longer be changed online.")
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        if booking.status != BookingStatus.CONFIRMED and not booking.is_holding:
            raise NotAllowed("Only an active booking's names can be changed.")
        items = {item.pk: item for item in booking.items.all()}
        changes = []
        emails = emails or {}
        for item_id, name in names.items():
            name = name.strip()[:150]
            if item_id not in items:
                raise InvalidBooking("That place is not part of this booking.")
            if not name:
                raise InvalidBooking("Each place needs a name.")
            item, email = items[item_id], emails.get(item_id, items[item_id].attendee_email).strip()
            if item.attendee_name != name or item.attendee_email != email:
                change = {"item": item_id, "old": item.attendee_name, "new": name}
                if item.attendee_email != email:
                    change |= {"old_email": item.attendee_email, "new_email": email}
                changes.append(change)
                item.attendee_name, item.attendee_email = name, email
        if not changes:
            return booking
        BookingItem.objects.bulk_update(
            [items[c["item"]] for c in changes], ["attendee_name", "attendee_email"]
        )
        booking.updated_at = now
        booking.save(update_fields=["updated_at"])
        timeline.attendees_changed(
            booking,
            now=now,
            acting_user=acting_user,
            actor=actor or ("customer" if by_customer else None),
            changes=changes,
        )
        _announce("booking.attendees_changed", booking, now, changes=changes)
    return booking
