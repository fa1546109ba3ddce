"""Outbox handlers of payments: the money follows the booking's changes, exactly once per change."""

from decimal import Decimal

from booking.models import Booking
from core.outbox.registry import outbox_handler
from payments.services import (
    arrival_capture,
    cancellation_settle,
    resale_seller_refund,
    unplaceable_payment_return,
)


@outbox_handler("booking.cancelled", name="payments.settle_cancellation")
def settle_cancellation(message, *, now) -> None:
    """Release authorisations and refund what the policy gives back (keyed by this message)."""
    booking = Booking.objects.get(pk=message.payload["booking_id"])
    cancellation_settle(
        booking=booking,
        refund_amount=Decimal(message.payload.get("refund_amount") or "0"),
        now=now,
        cause=f"outbox-{message.pk}",
    )


@outbox_handler("payments.unplaceable", name="payments.return_unplaceable_payment")
def return_unplaceable_payment(message, *, now) -> None:
    """A payment arrived for places that were gone: give the money back."""
    unplaceable_payment_return(
        payment_id=message.payload["payment_id"], now=now, cause=f"outbox-{message.pk}"
    )


@outbox_handler("booking.resale.completed", name="payments.refund_resale_seller")
def refund_resale_seller(message, *, now) -> None:
    """The buyer paid for a resold ticket: the seller gets the resale price back."""
    resale_seller_refund(
        booking=Booking.objects.get(pk=message.payload["booking_id"]),
        amount=Decimal(message.payload["amount"]),
        now=now,
        cause=f"outbox-{message.pk}",
    )


@outbox_handler("ticketing.checked_in", name="payments.capture_on_arrival")
def capture_on_arrival(message, *, now) -> None:
    """A pay-on-arrival guest was let in at the door: take the authorised money."""
    arrival_capture(booking=Booking.objects.get(pk=message.payload["booking_id"]), now=now)
