"""Reads of bookings for pages, emails and other apps."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core import signing
from django.db import connection
from django.db.models import QuerySet

from booking.models import HOLDING_STATUSES, SOLD_STATUSES, Booking, BookingCharge, BookingItem
from core.rows import instances_from, select_list
from inventory.models import CapacityCounter

MANAGE_SALT = "booking.manage"


def notice_text(delta: timedelta) -> str:
    """ "2 days", "24 hours", "30 minutes": a notice period as a customer reads it."""
    hours = delta.total_seconds() / 3600
    if hours >= 48 and hours % 24 == 0:
        return f"{int(hours // 24)} days"
    if hours >= 1:
        return f"{hours:g} hour{'s' if hours != 1 else ''}"
    return f"{int(delta.total_seconds() // 60)} minutes"


def booking_customer_cancel_refusal(*, booking: Booking, now: datetime) -> str:
    """Why the customer may not cancel this booking online now, or "" when they may.

    booking_cancel refuses with this very message, and the cancel page says it before offering a button.
    """
    policy = booking.offering.cancellation_policy
    if booking.status in SOLD_STATUSES and (policy is None or not policy.customer_can_cancel):
        return "This booking cannot be cancelled online. Please contact us."
    if booking.starts_at <= now:
        return "This has already started, so it can no longer be cancelled online."
    return ""


def booking_customer_reschedule_refusal(*, booking: Booking, now: datetime) -> str:
    """Why the customer may not move this booking online now, or "" when they may (booking_reschedule
    refuses with this message; the page to move it says it first)."""
    policy = booking.offering.cancellation_policy
    if policy is None or not policy.customer_can_reschedule:
        return "This booking cannot be moved online. Please contact us."
    if booking.starts_at - now < policy.reschedule_min_notice:
        notice = notice_text(policy.reschedule_min_notice)
        return f"Bookings can be moved online until {notice} before the start."
    return ""


def booking_manage_token(*, booking: Booking) -> str:
    """The signed token in a guest's manage link: proves they got it from us, without an account."""
    return signing.dumps({"r": booking.reference}, salt=MANAGE_SALT, compress=True)


def booking_get_by_manage_token(*, token: str) -> Booking:
    """:raises Booking.DoesNotExist: for a forged, altered or unknown token."""
    try:
        reference = signing.loads(token, salt=MANAGE_SALT)["r"]
    except (signing.BadSignature, KeyError, TypeError):
        raise Booking.DoesNotExist("That link is not valid.") from None
    return booking_detail_queryset().get(reference=reference)


def booking_detail_queryset() -> QuerySet[Booking]:
    return Booking.objects.select_related(
        "customer", "offering", "offering__location", "offering__cancellation_policy", "session"
    ).prefetch_related("items__ticket_type", "items__zone", "items__seat")


def booking_items(*, booking: Booking) -> QuerySet[BookingItem]:
    return booking.items.select_related("ticket_type", "zone", "seat").order_by("id")


def booking_charges_due(*, booking: Booking) -> list[BookingCharge]:
    """Fees asked after booking that are still to be paid (only a confirmed booking is asked)."""
    if booking.status != "confirmed":
        return []
    return list(booking.charges.filter(status=BookingCharge.Status.DUE).order_by("id"))


@dataclass(frozen=True)
class SessionPlacesNow:
    """A session's counters as a new booking finds them, read without a lock."""

    counters: list[CapacityCounter]
    sold_out: bool  # the booking can be refused at once


def session_places_for_new_booking(
    *, session_id: int, idempotency_key: str, now: datetime
) -> SessionPlacesNow:
    """The session's counters, and whether a new booking of it can be refused at once, in one query.

    Sold out when the total counter is full, none of the session's holds has run out (those places
    come back only under the counter lock, so the full path must run and release them), and the
    request is not the retry of a booking already made with this key (a retry gets its first
    answer). A place freed a moment after the read is missed exactly as if the customer had asked a
    moment earlier; nothing is ever sold on this read. The booking service takes the counters from
    here instead of reading them again. Plain SQL: in a rush most requests end here, and the ORM
    would spend more compiling this statement than PostgreSQL spends running it.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            _PLACES_NOW_SQL,
            {"session": session_id, "holding": list(HOLDING_STATUSES), "now": now, "key": idempotency_key},
        )
        rows = cursor.fetchall()
    counters = [counter for row in rows for counter in instances_from(row[2:], CapacityCounter)]
    total_full = any(
        c.zone_id is None and c.ticket_type_id is None and c.held + c.sold >= c.capacity for c in counters
    )
    hold_ran_out, key_used = rows[0][:2] if rows else (False, False)
    return SessionPlacesNow(counters=counters, sold_out=total_full and not hold_ran_out and not key_used)


# built once from the counter model's own columns, never from input
_PLACES_NOW_SQL = f"""
SELECT EXISTS (SELECT 1 FROM booking_booking b WHERE b.session_id = %(session)s
                  AND b.status = ANY(%(holding)s) AND b.hold_expires_at <= %(now)s),
       EXISTS (SELECT 1 FROM booking_booking b WHERE b.idempotency_key = %(key)s),
       {select_list(CapacityCounter, "c")}
  FROM inventory_capacitycounter c
 WHERE c.session_id = %(session)s
 ORDER BY c.id
"""  # noqa: S608
