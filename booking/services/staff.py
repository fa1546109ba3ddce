"""What staff do to a booking in admin: no-shows, resolving attention, re-sending the confirmation,
correcting the customer's details. Locks the booking.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from booking import timeline
from booking.locks import lock_booking, lock_customer
from booking.models import (
    Booking,
    BookingStatus,
    Customer,
)
from booking.services._shared import _announce
from booking.services.emails import email_enqueue
from booking.services.errors import InvalidBooking, NotAllowed
from booking.states import check_transition
from core.transactions import service_transaction

# --- staff operations --------------------------------------------------------------------------------


def booking_mark_no_show(*, booking: Booking, now: datetime, acting_user=None) -> Booking:
    """The customer did not come. (A no-show fee, if the offering has one, is charged by payments.)

    :raises IllegalTransition: only a confirmed booking can be a no-show.
    """
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        check_transition(booking.status, BookingStatus.NO_SHOW)
        if booking.starts_at > now:
            raise NotAllowed("It has not started yet; mark it as a no-show once the time has come.")
        previous = booking.status
        booking.status = BookingStatus.NO_SHOW
        booking.updated_at = now
        booking.save(update_fields=["status", "updated_at"])
        timeline.status_changed(
            booking, now=now, acting_user=acting_user, previous=previous, status=booking.status
        )
        _announce("booking.no_show", booking, now)
    return booking


def booking_attention_resolve(*, booking: Booking, now: datetime, note: str, acting_user=None) -> Booking:
    """A person looked at what was flagged and dealt with it; their note stays on the timeline."""
    note = note.strip()
    if not note:
        raise InvalidBooking("Say what was done, for whoever looks at this booking next.")
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        if not booking.needs_attention:
            raise InvalidBooking("Nothing is waiting for attention on this booking.")
        reason = booking.attention_reason
        booking.needs_attention = False
        booking.attention_reason = ""
        booking.updated_at = now
        booking.save(update_fields=["needs_attention", "attention_reason", "updated_at"])
        timeline.attention_resolved(booking, now=now, acting_user=acting_user, reason=reason, note=note)
    return booking


def booking_confirmation_resend(*, booking: Booking, now: datetime, acting_user=None) -> Booking:
    """Send the confirmation (with its calendar invite) again, as it is now, to the customer."""
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        if booking.status != BookingStatus.CONFIRMED:
            status = booking.get_status_display().lower()
            raise InvalidBooking(
                f"Only a confirmed booking has a confirmation to send; this one is {status}."
            )
        email_enqueue(
            booking=booking,
            kind="confirmed",
            to=booking.customer.email,
            extra={"resent": True},
            now=now,
            sequence=booking.sequence,
        )
        timeline.confirmation_resent(booking, now=now, acting_user=acting_user, to=booking.customer.email)
    return booking


def customer_details_correct(
    *, booking: Booking, name: str, email: str, phone: str, now: datetime, acting_user=None
) -> Customer:
    """Correct the booker's name, email or phone (a typo at the desk); old and new values are kept.

    :raises InvalidBooking: the email is not valid, or belongs to another customer (merge them instead).
    """
    name, email, phone = name.strip(), email.strip().lower(), phone.strip()
    if not name:
        raise InvalidBooking("The customer needs a name.")
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidBooking(f"{email!r} is not an email address.") from None
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        customer = lock_customer(customer_id=booking.customer_id)
        if Customer.objects.filter(email__iexact=email).exclude(pk=customer.pk).exists():
            raise InvalidBooking(f"Another customer already uses {email}; it cannot be given to this one.")
        before = {"name": customer.name, "email": customer.email, "phone": customer.phone}
        after = {"name": name, "email": email, "phone": phone}
        changes = {field: [before[field], after[field]] for field in before if before[field] != after[field]}
        if not changes:
            return customer
        Customer.objects.filter(pk=customer.pk).update(**after)
        timeline.customer_corrected(booking, now=now, acting_user=acting_user, changes=changes)
        customer.refresh_from_db()
    return customer
