"""Starting a payment: the PaymentIntent for a booking's deposit, full price, balance or extra charge,
created once per attempt (idempotency key from the booking's reference), and the balance reminders
due. Locks the booking's payments; never calls Stripe while capacity rows are locked.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import stripe
from django.db import IntegrityError

from booking.models import Booking, BookingCharge, BookingStatus
from booking.services import (
    booking_await_payment,
)
from core.outbox.services import outbox_enqueue
from core.transactions import service_transaction
from payments.locks import lock_payment
from payments.models import Payment, StripeCustomer
from payments.money import to_minor
from payments.selectors import PaymentTerms, payment_terms
from payments.services._shared import _record, _stripe_error_message
from payments.services.errors import NotPayable, PaymentError
from payments.stripe_client import stripe_client


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
    payment = _live_payment(booking_charge=charge)
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
        except IntegrityError:  # the other tab created it a moment ago (whatever attempt it counted)
            payment = _live_payment(booking_charge=charge)
            if payment is None:
                raise
    if not payment.client_secret:
        payment = _create_intent(booking=booking, payment=payment, terms=terms, now=now)
    return Checkout(payment, terms, payment.client_secret, "payment")


def _live_payment(**where) -> Payment | None:
    return Payment.objects.filter(**where).exclude(status=Payment.Status.CANCELED).order_by("-id").first()


def _payment_for_attempt(*, booking: Booking, purpose: str, terms: PaymentTerms, now: datetime) -> Payment:
    existing = _live_payment(booking=booking, purpose=purpose)
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
    except IntegrityError:
        # The other tab created it a moment ago. Not looked up by `attempt`: that tab may have counted
        # the attempts before this one did, or after.
        existing = _live_payment(booking=booking, purpose=purpose)
        if existing is None:
            raise
        return existing


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
