"""Writes of payments: starting a checkout, recording what Stripe says, refunds and authorisations.

The promise: a customer who paid is confirmed, or refunded/voided automatically and told, never
left "paid but not booked". `payment_intent_sync` is the single path from "Stripe says" to "our
database says", called by the webhook, the return page and reconciliation alike; it locks the
booking (then the payment, then, inside the booking service, the capacity rows), records the payment
with Stripe's ids and amounts, confirms, and writes the timeline and outbox in one transaction.

Stripe calls never happen while capacity rows are locked. Each carries an idempotency key derived
from what caused it: the booking and attempt, the refund request, the outbox message; every key
includes the booking's random reference, because Stripe remembers keys across databases (a staging
copy, a restored backup) that reuse row ids.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import stripe
from django.db import IntegrityError

from booking.locks import lock_booking
from booking.models import Booking, BookingCharge, BookingStatus
from booking.services import (
    CapacityGone,
    booking_await_payment,
    booking_charge_settle,
    booking_confirm,
    booking_flag_attention,
    booking_mark_no_show,
    booking_money_update,
    booking_payment_failed,
)
from booking.states import IllegalTransition
from core.audit.services import timeline_entry_record
from core.errors import ApplicationError
from core.outbox.services import outbox_enqueue
from core.transactions import service_transaction
from payments.locks import lock_booking_payments, lock_payment
from payments.models import Payment, Refund, StripeCustomer, WebhookEvent
from payments.money import from_minor, money, to_minor
from payments.selectors import PaymentTerms, live_payment, payment_terms
from payments.stripe_client import as_dict, stripe_client

logger = logging.getLogger(__name__)


class PaymentError(ApplicationError):
    default_code = "payment_error"


class NotPayable(PaymentError):
    default_code = "not_payable"


class RefundTooLarge(PaymentError):
    default_code = "refund_too_large"


def _record(booking: Booking, action: str, now: datetime, *, actor: str = "stripe", acting_user=None, **data):
    timeline_entry_record(
        subject=booking, action=action, now=now, actor=actor, acting_user=acting_user, data=data
    )


def _stripe_error_message(error: stripe.StripeError) -> str:
    return getattr(error, "user_message", None) or str(error) or "The payment provider refused the request."


# --- checkout -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkout:
    payment: Payment | None
    terms: PaymentTerms
    client_secret: str
    kind: str  # payment | setup | none


def _stripe_customer(booking: Booking) -> str:
    link = StripeCustomer.objects.filter(customer=booking.customer).first()
    if link:
        return link.stripe_customer_id
    created = stripe_client().v1.customers.create(
        {
            "email": booking.customer.email,
            "name": booking.customer.name,
            "metadata": {"customer_id": str(booking.customer_id)},
        },
        {"idempotency_key": f"customer-{booking.customer_id}-{booking.reference}"},
    )
    # Two tabs at once: the idempotency key gave both the same Stripe customer; one row is enough.
    with contextlib.suppress(IntegrityError), service_transaction():
        StripeCustomer.objects.create(customer=booking.customer, stripe_customer_id=created.id)
    return created.id


def checkout_prepare(*, booking: Booking, now: datetime) -> Checkout:
    """Get the booking's Stripe intent for the checkout page, creating it once per attempt.

    Safe to call on every page load and from two tabs: the payment row's idempotency key (booking,
    purpose, attempt) is unique here and is the Stripe idempotency key, so it yields one intent.

    :raises NotPayable: the booking is not waiting for a payment (confirmed, cancelled, expired).
    :raises PaymentsUnavailable: Stripe is not configured.
    """
    if booking.status == BookingStatus.CONFIRMED:
        charge = booking.charges.filter(status=BookingCharge.Status.DUE).order_by("id").first()
        if charge is not None:
            return _charge_checkout(booking=booking, charge=charge, now=now)
    if booking.status == BookingStatus.CONFIRMED and booking.amount_paid and booking.amount_due > 0:
        return _balance_checkout(booking=booking, now=now)
    terms = payment_terms(booking=booking, now=now)
    if not booking.is_holding:
        raise NotPayable("This booking is not waiting for a payment.")
    if booking.hold_expires_at and booking.hold_expires_at <= now:
        raise NotPayable("The time to pay for this booking has run out, so its places went back on sale.")
    if terms.method == "none":
        return Checkout(None, terms, "", "none")
    purpose = {
        "charge": Payment.Purpose.INITIAL,
        "authorize": Payment.Purpose.AUTHORIZATION,
        "setup": Payment.Purpose.CARD_SETUP,
    }[terms.method]
    payment = _payment_for_attempt(booking=booking, purpose=purpose, terms=terms, now=now)
    if not payment.client_secret:
        payment = _create_intent(booking=booking, payment=payment, terms=terms, now=now)
    if booking.status != BookingStatus.AWAITING_PAYMENT:
        booking_await_payment(booking=booking, now=now, actor="customer", payment_id=payment.pk)
    return Checkout(payment, terms, payment.client_secret, "setup" if terms.method == "setup" else "payment")


def _balance_checkout(*, booking: Booking, now: datetime) -> Checkout:
    """The balance of a deposit booking, paid from the link in the balance-due email."""
    due = booking.amount_due
    terms = PaymentTerms("charge", due, lines=[f"Pay the balance of {due} {booking.currency} now."])
    payment = _payment_for_attempt(booking=booking, purpose=Payment.Purpose.BALANCE, terms=terms, now=now)
    if not payment.client_secret:
        payment = _create_intent(booking=booking, payment=payment, terms=terms, now=now)
    return Checkout(payment, terms, payment.client_secret, "payment")


def _charge_checkout(*, booking: Booking, charge: BookingCharge, now: datetime) -> Checkout:
    """A fee asked after booking (a ticket transfer), paid on its own intent."""
    terms = PaymentTerms(
        "charge", charge.amount, lines=[f"Pay {charge.amount} {booking.currency} now: {charge.description}."]
    )
    payment = (
        Payment.objects.filter(booking_charge=charge).exclude(status=Payment.Status.CANCELED).order_by("-id")
    ).first()
    if payment is None:
        attempt = Payment.objects.filter(booking_charge=charge).count() + 1
        try:
            with service_transaction():
                payment = Payment.objects.create(
                    booking=booking,
                    booking_charge=charge,
                    purpose=Payment.Purpose.CHARGE,
                    attempt=attempt,
                    amount=to_minor(charge.amount, booking.currency),
                    currency=booking.currency,
                    idempotency_key=f"booking-{booking.reference}-{booking.pk}-charge-{charge.pk}-{attempt}",
                    created_at=now,
                    updated_at=now,
                )
        except IntegrityError:  # the other tab created it a moment ago
            payment = Payment.objects.get(booking_charge=charge, attempt=attempt)
    if not payment.client_secret:
        payment = _create_intent(booking=booking, payment=payment, terms=terms, now=now)
    return Checkout(payment, terms, payment.client_secret, "payment")


def _payment_for_attempt(*, booking: Booking, purpose: str, terms: PaymentTerms, now: datetime) -> Payment:
    existing = (
        Payment.objects.filter(booking=booking, purpose=purpose)
        .exclude(status=Payment.Status.CANCELED)
        .order_by("-id")
    ).first()
    if existing is not None:
        return existing  # a declined card retries on the same intent, as Stripe intends
    attempt = Payment.objects.filter(booking=booking, purpose=purpose).count() + 1
    amount = booking.total_amount if terms.method in ("authorize", "setup") else terms.amount_now
    try:
        with service_transaction():
            return Payment.objects.create(
                booking=booking,
                purpose=purpose,
                attempt=attempt,
                amount=to_minor(amount, booking.currency),
                currency=booking.currency,
                idempotency_key=f"booking-{booking.reference}-{booking.pk}-{purpose}-{attempt}",
                created_at=now,
                updated_at=now,
            )
    except IntegrityError:  # the other tab created it a moment ago
        return Payment.objects.get(booking=booking, purpose=purpose, attempt=attempt)


def _create_intent(*, booking: Booking, payment: Payment, terms: PaymentTerms, now: datetime) -> Payment:
    client = stripe_client()
    metadata = {"booking_id": str(booking.pk), "payment_id": str(payment.pk), "reference": booking.reference}
    options = {"idempotency_key": payment.idempotency_key}
    customer = (
        _stripe_customer(booking) if terms.save_card or terms.method in ("setup", "authorize") else None
    )
    try:
        if terms.method == "setup":
            intent = client.v1.setup_intents.create(
                {
                    "customer": customer,
                    "usage": "off_session",
                    "metadata": metadata,
                    "payment_method_types": ["card"],
                },
                options,
            )
        else:
            params: dict[str, Any] = {
                "amount": payment.amount,
                "currency": payment.currency.lower(),
                "metadata": metadata,
                "payment_method_types": ["card"],
                "description": f"{booking.offering.name} ({booking.reference})",
            }
            if customer:
                params["customer"] = customer
            if terms.method == "authorize":
                params["capture_method"] = "manual"
            if terms.save_card:
                params["setup_future_usage"] = "off_session"
            intent = client.v1.payment_intents.create(params, options)
    except stripe.StripeError as error:
        raise PaymentError(f"We could not start the payment: {_stripe_error_message(error)}") from None
    with service_transaction():
        payment = lock_payment(payment_id=payment.pk)
        if terms.method == "setup":
            payment.stripe_setup_intent_id = intent.id
        else:
            payment.stripe_payment_intent_id = intent.id
        payment.client_secret = intent.client_secret
        payment.stripe_customer_id = customer or ""
        payment.updated_at = now
        payment.save()
        _record(
            booking,
            "payments.intent.created",
            now,
            actor="customer",
            payment_id=payment.pk,
            stripe_id=intent.id,
            amount=payment.amount,
            currency=payment.currency,
            purpose=payment.purpose,
        )
    return payment


# --- recording what Stripe says -------------------------------------------------------------------

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


def _id(value: Any) -> str:
    return (value.get("id") if isinstance(value, dict) else value) or ""


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


# --- webhooks -------------------------------------------------------------------------------------

PAYMENT_EVENTS = {
    "payment_intent.succeeded",
    "payment_intent.amount_capturable_updated",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.processing",
    "setup_intent.succeeded",
    "setup_intent.setup_failed",
    "setup_intent.canceled",
}
REFUND_EVENTS = {"charge.refunded", "refund.created", "refund.updated"}


def webhook_event_handle(*, event: dict, now: datetime) -> str:
    """Act on a verified Stripe event once, whatever order events arrive in.

    The event only says *which* object changed: the object's current state is fetched from Stripe,
    so an old event arriving after a newer one cannot roll anything back. The event id is recorded
    in the same transaction as its effect, so a replay changes nothing and a failed attempt (lock
    busy: the caller answers 503 so Stripe retries) leaves no trace.

    :raises CapacityBusy: when the booking's places are locked too long (retry later).
    """
    event_type = event["type"]
    obj = event["data"]["object"]
    if WebhookEvent.objects.filter(stripe_event_id=event["id"]).exists():
        return "duplicate"
    if event_type not in PAYMENT_EVENTS | REFUND_EVENTS:
        return "ignored"
    client = stripe_client()
    if event_type in REFUND_EVENTS:
        charge_id = obj["id"] if obj.get("object") == "charge" else _id(obj.get("charge"))
        listed = client.v1.refunds.list({"charge": charge_id, "limit": 100}).data if charge_id else []
        current = [as_dict(r) for r in listed]
    elif obj.get("object") == "setup_intent":
        current = as_dict(client.v1.setup_intents.retrieve(obj["id"]))
    else:
        current = as_dict(client.v1.payment_intents.retrieve(obj["id"]))
    with service_transaction():
        try:
            with service_transaction():
                WebhookEvent.objects.create(
                    stripe_event_id=event["id"], type=event_type, object_id=obj["id"], received_at=now
                )
        except IntegrityError:
            return "duplicate"  # the same event is being handled right now by another delivery
        if event_type in REFUND_EVENTS:
            for refund in current:
                refund_sync(refund=refund, now=now)
        else:
            payment_intent_sync(intent=current, now=now)
    return "processed"


# --- refunds, captures and releases ---------------------------------------------------------------


def balance_reminders_due(*, now: datetime, ahead: timedelta = timedelta(days=3)) -> int:
    """Announce (once per booking) every deposit booking whose balance falls due within *ahead*.

    The email handler sends the customer a link to pay it; the outbox key makes it once only.
    """
    count = 0
    bookings = Booking.objects.filter(
        status=BookingStatus.CONFIRMED,
        amount_paid__gt=0,
        offering__payment_plan__kind="deposit",
        offering__payment_plan__balance_due_days_before__isnull=False,
        starts_at__gt=now,
    ).select_related("offering__payment_plan")
    for booking in bookings:
        due_at = booking.starts_at - timedelta(days=booking.offering.payment_plan.balance_due_days_before)
        if booking.amount_due > 0 and due_at - ahead <= now:
            with service_transaction():
                sent = outbox_enqueue(
                    topic="payments.balance_due",
                    key=f"balance-due:{booking.pk}",
                    now=now,
                    payload={
                        "booking_id": booking.pk,
                        "amount": str(booking.amount_due),
                        "due_at": due_at.isoformat(),
                    },
                )
            count += bool(sent)
    return count


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


def authorization_capture(
    *,
    booking: Booking,
    now: datetime,
    amount: Decimal | None = None,
    acting_user=None,
    actor: str | None = None,
) -> Payment:
    """Take the authorised money (at check-in), all of it or a part (the rest is released)."""
    payment = live_payment(booking=booking, purposes=(Payment.Purpose.AUTHORIZATION,))
    if payment is None or payment.status != Payment.Status.AUTHORIZED:
        raise PaymentError("There is no card authorisation to capture on this booking.")
    params: dict[str, Any] = {}
    if amount is not None:
        params["amount_to_capture"] = to_minor(amount, booking.currency)
    try:
        intent = stripe_client().v1.payment_intents.capture(
            payment.stripe_payment_intent_id,
            params,
            {"idempotency_key": f"capture-{payment.idempotency_key}"},
        )
    except stripe.StripeError as error:
        raise PaymentError(f"Stripe refused the capture: {_stripe_error_message(error)}") from None
    actor = actor or (acting_user.get_username() if acting_user else "system")
    return payment_intent_sync(intent=as_dict(intent), now=now, actor=actor)


def authorization_release(
    *, booking: Booking, now: datetime, acting_user=None, actor: str | None = None
) -> None:
    """Release money authorised or intents never paid (cancellation): nothing is taken from the card."""
    actor = actor or (acting_user.get_username() if acting_user else "system")
    for payment in Payment.objects.filter(
        booking=booking,
        status__in=[
            Payment.Status.AUTHORIZED,
            Payment.Status.PENDING,
            Payment.Status.FAILED,
        ],
    ).exclude(stripe_payment_intent_id=None):
        try:
            intent = stripe_client().v1.payment_intents.cancel(
                payment.stripe_payment_intent_id,
                {},
                {"idempotency_key": f"release-{payment.idempotency_key}"},
            )
        except stripe.InvalidRequestError:
            intent = stripe_client().v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
        payment_intent_sync(intent=as_dict(intent), now=now, actor=actor)


def no_show_fee_charge(*, booking: Booking, now: datetime, acting_user=None) -> Payment:
    """Charge the offering's no-show fee to the card saved at checkout (off-session)."""
    terms = payment_terms(booking=booking, now=now)
    if not terms.no_show_fee:
        raise PaymentError("This offering has no no-show fee.")
    saved = (
        Payment.objects.filter(booking=booking)
        .exclude(stripe_payment_method_id="")
        .exclude(stripe_customer_id="")
        .order_by("-id")
        .first()
    )
    if saved is None:
        raise PaymentError("No card was saved for this booking, so the fee cannot be charged.")
    with service_transaction():
        payment, _ = Payment.objects.get_or_create(
            idempotency_key=f"booking-{booking.reference}-{booking.pk}-no_show_fee",
            defaults={
                "booking": booking,
                "purpose": Payment.Purpose.NO_SHOW_FEE,
                "currency": booking.currency,
                "amount": to_minor(terms.no_show_fee, booking.currency),
                "created_at": now,
                "updated_at": now,
                "stripe_customer_id": saved.stripe_customer_id,
                "stripe_payment_method_id": saved.stripe_payment_method_id,
            },
        )
    try:
        intent = stripe_client().v1.payment_intents.create(
            {
                "amount": payment.amount,
                "currency": payment.currency.lower(),
                "customer": payment.stripe_customer_id,
                "payment_method": payment.stripe_payment_method_id,
                "off_session": True,
                "confirm": True,
                "metadata": {"booking_id": str(booking.pk), "payment_id": str(payment.pk)},
            },
            {"idempotency_key": payment.idempotency_key},
        )
    except stripe.CardError as error:
        intent = error.error.payment_intent if error.error and error.error.payment_intent else None
        if intent is None:
            raise PaymentError(f"The card was declined: {_stripe_error_message(error)}") from None
    actor = acting_user.get_username() if acting_user else "system"
    return payment_intent_sync(intent=as_dict(intent), now=now, actor=actor)


# --- after cancellation and unplaceable payments (outbox handlers call these) ---------------------


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


def arrival_capture(*, booking: Booking, now: datetime) -> Payment | None:
    """Checked in at the door: take the money a pay-on-arrival card authorised (nothing otherwise)."""
    payment = live_payment(booking=booking, purposes=(Payment.Purpose.AUTHORIZATION,))
    if payment is None or payment.status != Payment.Status.AUTHORIZED:
        return None
    return authorization_capture(booking=booking, now=now, actor="door")


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


# --- reconciliation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentDrift:
    payment_id: int | None
    stripe_id: str
    detail: str

    def __str__(self) -> str:
        return f"{self.stripe_id} (payment {self.payment_id}): {self.detail}"


def payments_reconcile(*, now: datetime, since: datetime) -> list[PaymentDrift]:
    """Bring local payments in line with Stripe (after an outage or a lost webhook) and report what changed.

    Every local payment touched since *since* is fetched from Stripe and recorded through the same
    sync as a webhook, so a payment made while we were down confirms its booking (or is given back).
    Intents in Stripe with our metadata but unknown here are reported.
    """
    drift: list[PaymentDrift] = []
    for payment in Payment.objects.filter(updated_at__gte=since).exclude(
        stripe_payment_intent_id=None, stripe_setup_intent_id=None
    ):
        before = (payment.status, payment.amount_received, payment.amount_refunded)
        refreshed = payment_refresh(payment=payment, now=now, actor="reconciliation") or payment
        if payment.stripe_payment_intent_id:
            for refund in (
                stripe_client().v1.refunds.list({"payment_intent": payment.stripe_payment_intent_id}).data
            ):
                refund_sync(refund=as_dict(refund), now=now)
        refreshed.refresh_from_db()
        after = (refreshed.status, refreshed.amount_received, refreshed.amount_refunded)
        if before != after:
            drift.append(
                PaymentDrift(
                    payment.pk,
                    payment.stripe_payment_intent_id or payment.stripe_setup_intent_id,
                    f"was {before}, Stripe says {after}",
                )
            )
    known = set(
        Payment.objects.exclude(stripe_payment_intent_id=None).values_list(
            "stripe_payment_intent_id", flat=True
        )
    )
    recent = stripe_client().v1.payment_intents.list(
        {"created": {"gte": int(since.timestamp())}, "limit": 100}
    )
    for intent in recent.data:
        if intent.id not in known and as_dict(intent).get("metadata", {}).get("booking_id"):
            synced = payment_intent_sync(intent=as_dict(intent), now=now, actor="reconciliation")
            drift.append(
                PaymentDrift(
                    synced.pk if synced else None,
                    intent.id,
                    "was missing here" + (" and is now recorded" if synced else ""),
                )
            )
    return drift


def no_show_record(*, booking: Booking, now: datetime, acting_user=None) -> Payment | None:
    """The customer did not come: mark the booking a no-show and, if its offering has a no-show fee,
    charge it to the card saved at checkout. Marked even when the card then declines (say so)."""
    booking = booking_mark_no_show(booking=booking, now=now, acting_user=acting_user)
    if not payment_terms(booking=booking, now=now).no_show_fee:
        return None
    return no_show_fee_charge(booking=booking, now=now, acting_user=acting_user)
