"""Refunds: how much may go back (never more than was paid), asking Stripe once per request, and
recording what Stripe says about it. Locks the booking's payments.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import stripe

from booking.locks import lock_booking
from booking.models import Booking
from core.transactions import service_transaction
from payments.locks import lock_booking_payments, lock_payment
from payments.models import Refund
from payments.money import money, to_minor
from payments.services._shared import _record, _stripe_error_message
from payments.services.errors import PaymentError, RefundTooLarge
from payments.services.intents import _money_update
from payments.stripe_client import as_dict, stripe_client


def payment_refund(
    *,
    booking: Booking,
    amount: Decimal,
    reason: str,
    now: datetime,
    idempotency_key: str,
    acting_user=None,
    actor: str | None = None,
) -> list[Refund]:
    """Refund *amount* of what this booking paid, newest payment first; never more than is left.

    *idempotency_key* names the cause (a staff form submission, the cancellation's outbox message):
    the same cause refunds once, however often it is retried.

    :raises RefundTooLarge: more than has been paid and not yet refunded.
    """
    if amount <= 0:
        raise RefundTooLarge("Enter an amount above zero.")
    actor = actor or (acting_user.get_username() if acting_user else "system")
    minor = to_minor(amount, booking.currency)
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        payments = [p for p in lock_booking_payments(booking_id=booking.pk) if p.refundable > 0]
        pending = sum(
            r.amount for r in Refund.objects.filter(payment__in=payments, status=Refund.Status.PENDING)
        )
        refundable = sum(p.refundable for p in payments) - pending
        cause = f"{booking.reference}:{idempotency_key}"
        existing = list(Refund.objects.filter(idempotency_key__startswith=f"{cause}:"))
        if existing:
            return existing
        if minor > refundable:
            raise RefundTooLarge(f"At most {money(max(refundable, 0), booking.currency)} can be refunded.")
        refunds, left = [], minor
        for payment in sorted(payments, key=lambda p: p.pk, reverse=True):
            part = min(left, payment.refundable)
            if part <= 0:
                continue
            refunds.append(
                Refund.objects.create(
                    payment=payment,
                    amount=part,
                    reason=reason[:200],
                    requested_by=actor,
                    idempotency_key=f"{cause}:{payment.pk}",
                    created_at=now,
                    updated_at=now,
                )
            )
            left -= part
        _record(
            booking,
            "payments.refund.requested",
            now,
            actor=actor,
            acting_user=acting_user,
            amount=str(amount),
            currency=booking.currency,
            reason=reason,
            refunds=[r.pk for r in refunds],
        )
    for refund in refunds:
        _send_refund(refund, now)
    return refunds


def _send_refund(refund: Refund, now: datetime) -> None:
    payment = refund.payment
    try:
        created = stripe_client().v1.refunds.create(
            {
                "payment_intent": payment.stripe_payment_intent_id,
                "amount": refund.amount,
                "metadata": {"refund_id": str(refund.pk), "booking_id": str(payment.booking_id)},
            },
            {"idempotency_key": refund.idempotency_key},
        )
    except stripe.StripeError as error:
        with service_transaction():
            Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.FAILED, updated_at=now)
            _record(
                payment.booking,
                "payments.refund.failed",
                now,
                refund_id=refund.pk,
                error=_stripe_error_message(error),
            )
        raise PaymentError(f"Stripe refused the refund: {_stripe_error_message(error)}") from None
    refund_sync(refund=as_dict(created), now=now)


def refund_sync(*, refund: dict, now: datetime) -> Refund | None:
    """Record a Stripe refund (from our own call, a webhook or reconciliation). Idempotent."""
    local = Refund.objects.filter(stripe_refund_id=refund["id"]).first()
    if local is None and (refund_id := (refund.get("metadata") or {}).get("refund_id")):
        local = Refund.objects.filter(pk=int(refund_id)).first()
    if local is None:
        return None  # made outside this system (e.g. in Stripe's dashboard); reconciliation reports it
    status = {
        "succeeded": Refund.Status.SUCCEEDED,
        "failed": Refund.Status.FAILED,
        "canceled": Refund.Status.FAILED,
    }.get(refund.get("status"), Refund.Status.PENDING)
    with service_transaction():
        booking = lock_booking(booking_id=local.payment.booking_id)
        payment = lock_payment(payment_id=local.payment_id)
        local.refresh_from_db()
        if local.stripe_refund_id == refund["id"] and local.status == status:
            return local
        local.stripe_refund_id, local.status, local.updated_at = refund["id"], status, now
        local.save(update_fields=["stripe_refund_id", "status", "updated_at"])
        payment.amount_refunded = sum(
            r.amount for r in payment.refunds.all() if r.status == Refund.Status.SUCCEEDED
        )
        payment.updated_at = now
        payment.save(update_fields=["amount_refunded", "updated_at"])
        _record(
            booking,
            f"payments.refund.{status}",
            now,
            refund_id=local.pk,
            stripe_refund_id=refund["id"],
            amount=local.amount,
            currency=payment.currency,
            payment_id=payment.pk,
        )
        _money_update(booking, now)
    return local
