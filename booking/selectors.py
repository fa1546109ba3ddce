"""Reads of bookings for pages, emails and other apps."""

from django.core import signing
from django.db.models import QuerySet

from booking.models import Booking, BookingCharge, BookingItem

MANAGE_SALT = "booking.manage"


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
