"""Money after a booking ends (outbox handlers call these): the refund a cancellation owes, a resold
place's seller refunded, a payment that found no place returned. Locks the booking's payments.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from booking.models import Booking
from core.outbox.services import outbox_enqueue
from core.transactions import service_transaction
from payments.models import Payment
from payments.money import from_minor
from payments.services._shared import _record
from payments.services.authorizations import authorization_release
from payments.services.intents import payment_refresh
from payments.services.refunds import payment_refund


def cancellation_settle(*, booking: Booking, refund_amount: Decimal, now: datetime, cause: str) -> None:
    """Release what is only authorised, and refund what the policy gives back of what was paid."""
    authorization_release(booking=booking, now=now, actor="system")
    booking.refresh_from_db()
    refundable = booking.amount_paid - booking.amount_refunded
    amount = min(refund_amount, refundable)
    if amount > 0:
        payment_refund(
            booking=booking,
            amount=amount,
            reason="Cancelled under the cancellation policy",
            now=now,
            idempotency_key=f"cancel-{cause}",
            actor="system",
        )


def resale_seller_refund(*, booking: Booking, amount: Decimal, now: datetime, cause: str) -> None:
    """A ticket was resold here: the seller gets the buyer's price back (up to what they paid)."""
    booking.refresh_from_db()
    amount = min(amount, booking.amount_paid - booking.amount_refunded)
    if amount > 0:
        payment_refund(
            booking=booking,
            amount=amount,
            reason="Ticket resold through the platform",
            now=now,
            idempotency_key=f"resale-{cause}",
            actor="system",
        )


def unplaceable_payment_return(*, payment_id: int, now: datetime, cause: str) -> None:
    """Give back a payment whose booking could not be confirmed: release an authorisation, refund a charge."""
    payment = Payment.objects.select_related("booking").get(pk=payment_id)
    payment_refresh(payment=payment, now=now)
    payment.refresh_from_db()
    if payment.status == Payment.Status.AUTHORIZED:
        authorization_release(booking=payment.booking, now=now, actor="system")
    elif payment.refundable > 0:
        payment_refund(
            booking=payment.booking,
            amount=from_minor(payment.refundable, payment.currency),
            reason="The places were gone when the payment arrived",
            now=now,
            idempotency_key=f"unplaceable-{cause}",
            actor="system",
        )
    _record_returned(payment.booking, now, payment)


def _record_returned(booking: Booking, now: datetime, payment: Payment) -> None:
    with service_transaction():
        _record(booking, "payments.late_payment.returned", now, actor="system", payment_id=payment.pk)
        outbox_enqueue(
            topic="payments.money_returned",
            payload={"booking_id": booking.pk, "payment_id": payment.pk},
            now=now,
        )
