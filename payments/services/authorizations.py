"""Card authorisations held until arrival: capturing, releasing, and the no-show fee taken from
one. Locks the booking's payments.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import stripe

from booking.models import Booking
from booking.services import (
    booking_mark_no_show,
)
from core.transactions import service_transaction
from payments.models import Payment
from payments.money import to_minor
from payments.selectors import live_payment, payment_terms
from payments.services._shared import _stripe_error_message
from payments.services.errors import PaymentError
from payments.services.intents import payment_intent_sync
from payments.stripe_client import as_dict, stripe_client


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


def arrival_capture(*, booking: Booking, now: datetime) -> Payment | None:
    """Checked in at the door: take the money a pay-on-arrival card authorised (nothing otherwise)."""
    payment = live_payment(booking=booking, purposes=(Payment.Purpose.AUTHORIZATION,))
    if payment is None or payment.status != Payment.Status.AUTHORIZED:
        return None
    return authorization_capture(booking=booking, now=now, actor="door")


def no_show_record(*, booking: Booking, now: datetime, acting_user=None) -> Payment | None:
    """The customer did not come: mark the booking a no-show and, if its offering has a no-show fee,
    charge it to the card saved at checkout. Marked even when the card then declines (say so)."""
    booking = booking_mark_no_show(booking=booking, now=now, acting_user=acting_user)
    if not payment_terms(booking=booking, now=now).no_show_fee:
        return None
    return no_show_fee_charge(booking=booking, now=now, acting_user=acting_user)
