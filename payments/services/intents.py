"""Recording what Stripe says about a PaymentIntent: the single path from "Stripe says" to "our
database says" (webhook, return page and reconciliation alike). Locks the booking, then the payment,
then (inside the booking service) the capacity rows; confirms, or gives the money back.
"""

from __future__ import annotations

import logging
from datetime import datetime

from booking.locks import lock_booking
from booking.models import Booking, BookingStatus
from booking.services import (
    CapacityGone,
    booking_charge_settle,
    booking_confirm,
    booking_flag_attention,
    booking_money_update,
    booking_payment_failed,
)
from booking.states import IllegalTransition
from core.outbox.services import outbox_enqueue
from core.transactions import service_transaction
from payments.locks import lock_payment
from payments.models import Payment
from payments.money import from_minor
from payments.services._shared import _id, _record
from payments.stripe_client import as_dict, stripe_client

logger = logging.getLogger(__name__)


_STATUS = {
    "succeeded": Payment.Status.SUCCEEDED,
    "requires_capture": Payment.Status.AUTHORIZED,
    "processing": Payment.Status.PROCESSING,
    "canceled": Payment.Status.CANCELED,
    "requires_payment_method": Payment.Status.PENDING,
    "requires_confirmation": Payment.Status.PENDING,
    "requires_action": Payment.Status.PENDING,
}


def _payment_for_intent(intent: dict) -> Payment | None:
    field = "stripe_setup_intent_id" if intent.get("object") == "setup_intent" else "stripe_payment_intent_id"
    payment = Payment.objects.filter(**{field: intent["id"]}).first()
    metadata = intent.get("metadata") or {}
    if payment is None and metadata.get("payment_id") and metadata.get("booking_id"):
        # We crashed after Stripe created it and before we stored its id: the metadata finds it,
        # provided it names the same booking and the payment has no other intent already.
        payment = (
            Payment.objects.filter(pk=int(metadata["payment_id"]), booking_id=int(metadata["booking_id"]))
            .filter(**{f"{field}__isnull": True})
            .first()
        )
    return payment


def payment_intent_sync(*, intent: dict, now: datetime, actor: str = "stripe") -> Payment | None:
    """Record a PaymentIntent or SetupIntent as Stripe reports it now, and act on it. Idempotent.

    Succeeded or authorised → the booking is confirmed in this same transaction; if its places are
    gone (the payment landed after the hold died and someone else took them) the booking is marked
    for attention and an outbox message refunds or releases the money and tells the customer.
    Failed → the booking shows "payment failed" while the hold still runs.

    :raises CapacityBusy: the booking's places are locked too long by others (the caller retries).
    """
    payment = _payment_for_intent(intent)
    if payment is None:
        logger.warning(
            "Stripe intent %s matches no payment here; reconciliation will report it.", intent["id"]
        )
        return None
    with service_transaction():
        booking = lock_booking(booking_id=payment.booking_id)
        payment = lock_payment(payment_id=payment.pk)
        changed = _apply_intent(payment, intent, now)
        if not changed:
            return payment
        data = {
            "payment_id": payment.pk,
            "stripe_id": intent["id"],
            "status": payment.status,
            "amount": payment.amount,
            "amount_received": payment.amount_received,
            "amount_capturable": payment.amount_capturable,
            "charge": payment.stripe_charge_id,
        }
        _record(booking, f"payments.payment.{payment.status}", now, actor=actor, **data)
        secured = payment.status in (Payment.Status.SUCCEEDED, Payment.Status.AUTHORIZED) or (
            payment.purpose == Payment.Purpose.CARD_SETUP and intent.get("status") == "succeeded"
        )
        if secured and payment.purpose in (
            Payment.Purpose.INITIAL,
            Payment.Purpose.AUTHORIZATION,
            Payment.Purpose.CARD_SETUP,
        ):
            _confirm_or_give_back(booking, payment, now, actor)
        elif payment.purpose == Payment.Purpose.CHARGE and payment.status == Payment.Status.SUCCEEDED:
            booking_charge_settle(
                charge=payment.booking_charge, paid=True, now=now, actor=actor, payment_id=payment.pk
            )
        elif payment.status == Payment.Status.FAILED and booking.is_holding:
            booking_payment_failed(booking=booking, now=now, reason=payment.failure_message, actor=actor)
        _money_update(booking, now)
    return payment


def _apply_intent(payment: Payment, intent: dict, now: datetime) -> bool:
    before = (
        payment.status,
        payment.amount_received,
        payment.amount_capturable,
        payment.stripe_charge_id,
        payment.failure_message,
    )
    if intent.get("object") == "setup_intent":
        payment.stripe_setup_intent_id = intent["id"]
        payment.status = {"succeeded": Payment.Status.SUCCEEDED, "canceled": Payment.Status.CANCELED}.get(
            intent["status"], Payment.Status.PENDING
        )
    else:
        payment.stripe_payment_intent_id = intent["id"]
        payment.status = _STATUS.get(intent["status"], Payment.Status.PENDING)
        payment.amount_received = intent.get("amount_received") or 0
        payment.amount_capturable = intent.get("amount_capturable") or 0
        charge = intent.get("latest_charge")
        payment.stripe_charge_id = (charge.get("id") if isinstance(charge, dict) else charge) or ""
    error = intent.get("last_payment_error") or intent.get("last_setup_error")
    if error and payment.status == Payment.Status.PENDING:
        payment.status = Payment.Status.FAILED
        payment.failure_message = (error.get("message") or "The card was declined.")[:500]
    payment.stripe_payment_method_id = _id(intent.get("payment_method")) or payment.stripe_payment_method_id
    payment.stripe_customer_id = _id(intent.get("customer")) or payment.stripe_customer_id
    after = (
        payment.status,
        payment.amount_received,
        payment.amount_capturable,
        payment.stripe_charge_id,
        payment.failure_message,
    )
    if before == after:
        return False
    payment.updated_at = now
    payment.save()
    return True


def _confirm_or_give_back(booking: Booking, payment: Payment, now: datetime, actor: str) -> None:
    if booking.status == BookingStatus.CONFIRMED:
        return
    try:
        booking_confirm(
            booking=booking,
            now=now,
            actor=actor,
            data={
                "payment_id": payment.pk,
                "stripe_id": payment.stripe_payment_intent_id or payment.stripe_setup_intent_id,
            },
        )
    except (CapacityGone, IllegalTransition) as error:
        stripe_id = payment.stripe_payment_intent_id or payment.stripe_setup_intent_id
        reason = f"Payment {stripe_id} arrived but the booking could not be confirmed: {error.message}"
        booking_flag_attention(booking=booking, now=now, reason=reason, actor=actor, payment_id=payment.pk)
        outbox_enqueue(
            topic="payments.unplaceable",
            payload={"payment_id": payment.pk, "booking_id": booking.pk, "reason": error.message},
            now=now,
        )


def _money_update(booking: Booking, now: datetime) -> None:
    payments = list(Payment.objects.filter(booking=booking))
    received = sum(p.amount_received for p in payments)
    refunded = sum(p.amount_refunded for p in payments)
    booking_money_update(
        booking=booking,
        paid=from_minor(received, booking.currency),
        refunded=from_minor(refunded, booking.currency),
        now=now,
    )


def payment_refresh(*, payment: Payment, now: datetime, actor: str = "stripe") -> Payment | None:
    """Ask Stripe for the intent's current state and record it (return page, webhooks, reconciliation)."""
    client = stripe_client()
    if payment.stripe_setup_intent_id:
        intent = client.v1.setup_intents.retrieve(payment.stripe_setup_intent_id)
    elif payment.stripe_payment_intent_id:
        intent = client.v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    else:
        return payment
    return payment_intent_sync(intent=as_dict(intent), now=now, actor=actor)
