"""The Stripe endpoints localstripe lacks or gets wrong, replaced with Stripe's behaviour.

PaymentIntents and SetupIntents (create, confirm, cancel, 3-D Secure), refunds within what was
captured, and the listings (`/v1/events` newest first, intents by `created`, charges, methods).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from localstripe.errors import UserError
from localstripe.resources import (
    Charge,
    Event,
    PaymentIntent,
    PaymentMethod,
    Refund,
    SetupIntent,
    StripeObject,
    try_convert_to_bool,
    try_convert_to_int,
)

from standins.stripe_resources import (
    card_decline,
    emit_event,
    money_text,
    reject_unknown,
    require_choice,
    require_status,
    stripe_error,
)

PI_STORED = (
    "automatic_payment_methods",
    "description",
    "payment_method_types",
    "receipt_email",
    "setup_future_usage",
    "statement_descriptor",
    "statement_descriptor_suffix",
)
SI_STORED = ("automatic_payment_methods", "description")
# Accepted and ignored: they steer redirects and mandates the stand-in does not have.
IGNORED = ("error_on_requires_action", "mandate_data", "off_session", "return_url", "use_stripe_sdk")
UNCONFIRMED = ("requires_payment_method", "requires_confirmation", "requires_action")
PI_CANCELLATION_REASONS = ("abandoned", "duplicate", "fraudulent", "requested_by_customer")
SI_CANCELLATION_REASONS = ("abandoned", "duplicate", "requested_by_customer")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def _take(params: dict[str, Any], stored: tuple[str, ...]) -> dict[str, Any]:
    """Remove `stored` and IGNORED parameters from `params`; return the stored ones."""
    taken = {name: params.pop(name) for name in stored if name in params}
    for name in IGNORED:
        params.pop(name, None)
    if isinstance(taken.get("automatic_payment_methods"), dict):
        taken["automatic_payment_methods"] = {
            name: try_convert_to_bool(value) for name, value in taken["automatic_payment_methods"].items()
        }
    return taken


def _payment_method(payment_method: str | None, payment_method_data: dict | None) -> PaymentMethod | None:
    if payment_method_data is not None:
        return PaymentMethod(**payment_method_data)
    # Resolves test ids such as pm_card_visa to a real object, so the intent stores a real id.
    return PaymentMethod._api_retrieve(payment_method) if payment_method else None


def _confirm_payment(intent: PaymentIntent) -> None:
    intent._confirm(on_failure_now=intent._report_failure)
    if intent.setup_future_usage and intent.customer and intent.status in ("succeeded", "requires_capture"):
        PaymentMethod._api_attach(intent.payment_method, customer=intent.customer)


def create_payment_intent(
    confirm: Any = None, payment_method: str | None = None, **params: Any
) -> PaymentIntent:
    off_session = try_convert_to_bool(params.get("off_session"))
    confirm = try_convert_to_bool(confirm)
    if off_session and confirm is not True:
        raise stripe_error(400, "off_session can only be used with confirm=true.", param="off_session")
    stored = _take(params, PI_STORED)
    method = _payment_method(payment_method, None)
    intent = PaymentIntent._api_create(payment_method=method.id if method else None, **params)
    for name, value in stored.items():
        setattr(intent, name, value)
    if confirm:
        _confirm_payment(intent)
    return intent


def confirm_payment_intent(
    id: str,  # localstripe passes the path's {id} under this name
    payment_method: str | None = None,
    payment_method_data: dict | None = None,
    client_secret: str | None = None,
    setup_future_usage: str | None = None,
    **params: Any,
) -> PaymentIntent:
    _take(params, ())
    params.pop("payment_method_types", None)
    reject_unknown(params)
    intent = PaymentIntent._api_retrieve(id)
    require_status(intent, "confirm", UNCONFIRMED)
    method = _payment_method(payment_method, payment_method_data)
    if method is not None:
        # A new payment method starts a new attempt, also after a declined one.
        intent.payment_method = method.id
        intent.latest_charge = None
        intent.next_action = None
        intent._authentication_failed = False
    elif intent.status == "requires_payment_method":
        raise stripe_error(
            400,
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            code="payment_intent_unexpected_state",
        )
    if setup_future_usage:
        intent.setup_future_usage = setup_future_usage
    _confirm_payment(intent)
    return intent


def cancel_payment_intent(
    id: str,
    cancellation_reason: str | None = None,
    **params: Any,
) -> PaymentIntent:
    reject_unknown(params)
    require_choice("cancellation_reason", cancellation_reason, PI_CANCELLATION_REASONS)
    intent = PaymentIntent._api_retrieve(id)
    require_status(intent, "cancel", (*UNCONFIRMED, "requires_capture"))
    PaymentIntent._api_cancel(id)
    intent.cancellation_reason = cancellation_reason
    intent.canceled_at = int(time.time())
    emit_event("payment_intent.canceled", intent)
    return intent


def authenticate_payment_intent(id: str, **params: Any) -> PaymentIntent:
    intent = PaymentIntent._api_authenticate(id, **params)
    if intent._authentication_failed:
        emit_event("payment_intent.payment_failed", intent)
    return intent


def create_setup_intent(confirm: Any = None, payment_method: str | None = None, **params: Any) -> SetupIntent:
    stored = _take(params, SI_STORED)
    method = _payment_method(payment_method, None)
    intent = SetupIntent._api_create(**params)
    for name, value in stored.items():
        setattr(intent, name, value)
    if method is not None:
        intent.payment_method = method.id
        intent.status = "requires_confirmation"
    if try_convert_to_bool(confirm):
        _confirm_setup(intent, method)
    return intent


def confirm_setup_intent(
    id: str,
    payment_method: str | None = None,
    payment_method_data: dict | None = None,
    client_secret: str | None = None,
    **params: Any,
) -> SetupIntent:
    _take(params, ())
    reject_unknown(params)
    intent = SetupIntent._api_retrieve(id)
    require_status(intent, "confirm", UNCONFIRMED)
    method = _payment_method(payment_method, payment_method_data)
    if method is None and intent.payment_method is None:
        raise stripe_error(
            400,
            "You cannot confirm this SetupIntent because it's missing a payment method.",
            code="setup_intent_unexpected_state",
        )
    _confirm_setup(intent, method)
    return intent


def _confirm_setup(intent: SetupIntent, method: PaymentMethod | None) -> None:
    if method is None and intent.status == "requires_confirmation":
        # localstripe checks a card only when it is passed in; one given at creation needs it too.
        method = PaymentMethod._api_retrieve(intent.payment_method)
    try:
        SetupIntent._api_confirm(intent.id, payment_method=method.id if method else None)
    except UserError as error:
        if error.code != 402:
            raise
        # localstripe cancels the intent; Stripe keeps it open for another payment method.
        intent.status = "requires_payment_method"
        intent.last_setup_error = {
            **error.body["error"],
            "type": "card_error",
            "decline_code": card_decline(intent.payment_method)[0],
            "payment_method": PaymentMethod._api_retrieve(intent.payment_method)._export(),
        }
        error.body["error"].update(intent.last_setup_error, setup_intent=intent._export())
        emit_event("setup_intent.setup_failed", intent)
        raise
    if intent.status == "succeeded":
        intent.last_setup_error = None
        if intent.customer:
            PaymentMethod._api_attach(intent.payment_method, customer=intent.customer)
        emit_event("setup_intent.succeeded", intent)


def cancel_setup_intent(
    id: str,
    cancellation_reason: str | None = None,
    client_secret: str | None = None,
    **params: Any,
) -> SetupIntent:
    reject_unknown(params)
    require_choice("cancellation_reason", cancellation_reason, SI_CANCELLATION_REASONS)
    intent = SetupIntent._api_retrieve(id)
    require_status(intent, "cancel", UNCONFIRMED)
    SetupIntent._api_cancel(id)
    intent.cancellation_reason = cancellation_reason
    emit_event("setup_intent.canceled", intent)
    return intent


def create_refund(
    charge: str | None = None,
    payment_intent: str | None = None,
    amount: Any = None,
    reason: str | None = None,
    metadata: dict | None = None,
    **params: Any,
) -> Refund:
    reject_unknown(params)
    require_choice("reason", reason, REFUND_REASONS)
    if payment_intent is not None:
        charge_obj = PaymentIntent._api_retrieve(payment_intent).latest_charge
    elif charge is not None:
        charge_obj = Charge._api_retrieve(charge)
    else:
        raise stripe_error(400, "One of the following params should be provided: charge or payment_intent.")
    if charge_obj is None or charge_obj.amount_captured == 0:
        raise stripe_error(
            400,
            "This payment has no captured charge to refund; cancel the PaymentIntent to release an "
            "authorization.",
            code="charge_not_refundable",
        )
    captured = charge_obj.amount_captured
    # A partial capture shows the released remainder as a refund; it is not the customer's money.
    refunded = charge_obj.amount_refunded - (charge_obj.amount - captured)
    remaining = captured - refunded
    if remaining <= 0:
        raise stripe_error(
            400, f"Charge {charge_obj.id} has already been refunded.", code="charge_already_refunded"
        )
    amount = remaining if amount is None else try_convert_to_int(amount)
    if not isinstance(amount, int) or amount <= 0:
        raise stripe_error(400, "Invalid positive integer", param="amount", code="parameter_invalid_integer")
    if amount > remaining:
        currency = charge_obj.currency
        limit = (
            f"charge amount ({money_text(captured, currency)})"
            if refunded == 0
            else f"unrefunded amount on charge ({money_text(remaining, currency)})"
        )
        raise stripe_error(
            400, f"Refund amount ({money_text(amount, currency)}) is greater than {limit}", param="amount"
        )
    refund = Refund(charge=charge_obj.id, amount=amount, metadata=metadata)
    refund.payment_intent = charge_obj.payment_intent
    refund.reason = reason
    emit_event("refund.created", refund)
    emit_event("charge.refunded", charge_obj)
    return refund


def update_refund(id: str, metadata: dict | None = None, **params: Any) -> Refund:
    reject_unknown(params)
    refund = Refund._api_update(id, metadata=metadata or {})
    emit_event("refund.updated", refund)
    return refund


def list_events(**params: Any) -> StripeObject:
    events = Event._api_list_all("/v1/events", **params)
    events._list.reverse()  # the store keeps creation order; Stripe lists newest first
    return events


def _created_filter(created: Any) -> Callable[[int], bool]:
    """Stripe's `created` list filter: an exact timestamp or gt/gte/lt/lte bounds."""
    if created is None:
        return lambda _: True
    if not isinstance(created, dict):
        return lambda value: value == int(created)
    tests = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
    bounds = [(tests[op], int(limit)) for op, limit in created.items() if op in tests]
    return lambda value: all(test(value, limit) for test, limit in bounds)


def list_payment_intents(created: Any = None, customer: str | None = None, **params: Any) -> StripeObject:
    # localstripe lists every intent; reconciliation asks for the recent ones (`created[gte]`).
    intents = PaymentIntent._api_list_all("/v1/payment_intents", **params)
    keep = _created_filter(created)
    intents._list = [
        i for i in intents._list if keep(i.created) and (customer is None or i.customer == customer)
    ]
    intents._list.reverse()
    return intents


def list_charges(payment_intent: str | None = None, **params: Any) -> StripeObject:
    charges = Charge._api_list_all("/v1/charges", **params)
    if payment_intent is not None:
        charges._list = [c for c in charges._list if getattr(c, "payment_intent", None) == payment_intent]
    return charges


def list_payment_methods(type: str = "card", **params: Any) -> StripeObject:
    # Stripe's `type` is optional; localstripe requires it and knows only cards.
    return PaymentMethod._api_list_all("/v1/payment_methods", type=type, **params)
