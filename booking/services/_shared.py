"""Helpers every booking service uses: the customer row for an email, the idempotency key that makes
a retried request book once, the timeline-and-outbox announcement of a change, the hold's expiry
task, the sales window. Locks nothing itself; `_in_one_transaction` opens the one transaction a
use case runs in.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, connection, transaction

from booking import timeline
from booking.models import (
    SOLD_STATUSES,
    Booking,
    Customer,
)
from booking.selectors import (
    notice_text,
)
from booking.services.errors import IdempotencyConflict, InvalidBooking
from booking.services.requests import CustomerDetails
from core.broker import task_publish
from core.outbox.services import outbox_enqueue
from core.transactions import service_transaction
from inventory.availability import sales_window_reason
from inventory.capacity import (
    Place,
)
from inventory.models import Offering, Session

ITEM_HOLDER_PREFIX = "booking_item:"

# --- shared helpers -----------------------------------------------------------------------------


def _customer_for(details: CustomerDetails, now: datetime) -> Customer:
    """The customer with this email (any case), created or updated with the details given, in one statement.

    One statement rather than look-up-then-insert: two tabs booking for the same person at once both
    land on the same row, and a flash sale does not pay for three round trips per booking.
    """
    sql = """
        INSERT INTO booking_customer (name, email, phone, time_zone, created_at)
        VALUES (%(name)s, %(email)s, %(phone)s, %(time_zone)s, %(now)s)
        ON CONFLICT (lower(email)) DO UPDATE SET
            name = EXCLUDED.name,
            phone = COALESCE(NULLIF(EXCLUDED.phone, ''), booking_customer.phone),
            time_zone = COALESCE(NULLIF(EXCLUDED.time_zone, ''), booking_customer.time_zone)
        RETURNING id, name, email, phone, time_zone, user_id, created_at
    """
    params = {
        "name": details.name,
        "email": details.email,
        "phone": details.phone,
        "time_zone": details.time_zone,
        "now": now,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return Customer(
        id=row[0],
        name=row[1],
        email=row[2],
        phone=row[3],
        time_zone=row[4],
        user_id=row[5],
        created_at=row[6],
    )


def _require_key(key: str) -> None:
    if not key:
        raise InvalidBooking("This booking form has expired. Please reload the page.")


def _existing_for_key(key: str, details: CustomerDetails, offering: Offering) -> Booking | None:
    booking = Booking.objects.filter(idempotency_key=key).select_related("customer").first()
    if booking is None:
        return None
    if booking.offering_id != offering.pk or booking.customer.email.lower() != details.email.lower():
        raise IdempotencyConflict("This booking form was already used. Please reload the page and try again.")
    return booking


def _in_one_transaction(key: str, details: CustomerDetails, offering: Offering, work):
    """Run *work* in one transaction; a retry with the same key gets the first booking back.

    The key's unique index decides, not a look-up first: the common case (a new key) costs nothing
    extra, and two concurrent retries cannot both pass a look-up.
    """
    try:
        with service_transaction():
            return work()
    except IntegrityError:
        existing = _existing_for_key(key, details, offering)
        if existing is not None:
            return existing
        raise


def _places_of(booking: Booking) -> tuple[list[Place], list[str]]:
    """The places this booking holds in the capacity counters, with their holders.

    A place resold to someone else is theirs now; a place being bought on resale is still the
    seller's until the purchase is confirmed.
    """
    items = [
        i
        for i in booking.items.all()
        if not i.resold and (i.resale_of_id is None or booking.status in SOLD_STATUSES)
    ]
    return (
        [Place(zone_id=i.zone_id, ticket_type_id=i.ticket_type_id, seat_id=i.seat_id) for i in items],
        [i.holder for i in items],
    )


def _announce(topic: str, booking: Booking, now: datetime, **extra) -> None:
    if topic == "booking.confirmed":
        from booking.notifications import confirmation_carried

        # ticketing sends a ticketed booking's confirmation itself, and there is no staff email to
        # send: booking's notifications then have nothing to do with this event
        extra["confirmation_carried"] = confirmation_carried(booking)
    outbox_enqueue(
        topic=topic,
        payload={
            "booking_id": booking.pk,
            "reference": booking.reference,
            "sequence": booking.sequence,
            **extra,
        },
        now=now,
    )


def _invite_changed(booking: Booking, now: datetime, *fields: str) -> None:
    """Save a change the customer's calendar must pick up: SEQUENCE goes up, so the next invite (same
    UID) replaces the event they have instead of adding a second one."""
    booking.sequence += 1
    booking.updated_at = now
    booking.save(update_fields=[*fields, "sequence", "updated_at"])


def _booking_opened(booking: Booking, *, free: bool, now: datetime, acting_user, actor, **summary) -> None:
    """A new booking's first timeline entry and announcement: confirmed at once when nothing is to
    pay, else a hold whose expiry is scheduled."""
    if free:
        timeline.created_and_confirmed(booking, now=now, acting_user=acting_user, actor=actor, **summary)
        _announce("booking.confirmed", booking, now)
    else:
        timeline.hold_created(booking, now=now, acting_user=acting_user, actor=actor, **summary)
        _announce("booking.held", booking, now)
        _schedule_expiry(booking)


def _schedule_expiry(booking: Booking) -> None:
    eta = booking.hold_expires_at
    booking_id = booking.pk

    # If the broker is away, the periodic sweep releases the hold instead.
    transaction.on_commit(
        lambda: task_publish("booking.tasks.booking_expire_hold", kwargs={"booking_id": booking_id}, eta=eta)
    )


def _local(moment: datetime, offering: Offering) -> str:
    return f"{moment.astimezone(offering.location.tz):%a %d %b %H:%M %Z}"


def _check_window(
    *, offering: Offering, starts_at: datetime, sales_open_at, sales_close_at, now: datetime
) -> None:
    if starts_at <= now:
        raise InvalidBooking("That time has already passed. Please choose a later one.")
    reason = sales_window_reason(now=now, sales_open_at=sales_open_at, sales_close_at=sales_close_at)
    if reason == "not_on_sale_yet":
        raise InvalidBooking(f"Booking opens {_local(sales_open_at, offering)}.")
    if reason == "sales_closed":
        raise InvalidBooking("Booking for this has closed.")
    if starts_at < now + offering.min_notice:
        raise InvalidBooking(f"Online booking closes {notice_text(offering.min_notice)} before the start.")
    if starts_at > now + offering.horizon:
        raise InvalidBooking(f"This can be booked at most {offering.horizon.days} days ahead.")


def _check_session_window(*, offering: Offering, session: Session, now: datetime) -> None:
    """A session's own sales window where it has one, the offering's otherwise."""
    _check_window(
        offering=offering,
        starts_at=session.starts_at,
        sales_open_at=session.sales_open_at or offering.sales_open_at,
        sales_close_at=session.sales_close_at or offering.sales_close_at,
        now=now,
    )
