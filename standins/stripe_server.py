"""A local Stripe for tests and the demo: localstripe, plus the parts of Stripe the project relies on.

`python -m standins.stripe_server --port 12111` serves it on 127.0.0.1; `StripeStandIn.start()`
runs it in a child process on a free port. Point the real client at it with
`stripe.StripeClient(key, base_addresses={"api": url})` (any `sk_` key works) and the browser at
`{url}/js.stripe.com/v3/`.

On top of localstripe (https://github.com/adrienverge/localstripe) this adds:

- Idempotency-Key replay: a POST repeating a key gets the first answer (status and body, with
  `Idempotent-Replayed: true`) and changes nothing; the same key with another method, path or body
  is refused with an `idempotency_error`. Keys live in the store, so they persist and reset with it.
- SetupIntents created with `payment_method`/`confirm`; a succeeded one attaches its payment method
  to its customer, as Stripe does, so later off-session payments can use it.
- `amount_capturable`, `amount_received` (PaymentIntent) and `amount_captured` (Charge); a partial
  capture releases the rest, shown as a refund of the remainder as Stripe shows it.
- Refunds above what is left of the captured amount are refused with Stripe's messages.
- Events localstripe never sends: `payment_intent.amount_capturable_updated`, `.canceled`,
  `.payment_failed` after failed 3-D Secure, `charge.refunded`, `refund.created`, `refund.updated`,
  `setup_intent.succeeded`, `.setup_failed`, `.canceled`; `GET /v1/events` lists newest first.
- Parameters Stripe accepts and localstripe refused (`automatic_payment_methods`,
  `cancellation_reason`, refund `reason`, `confirm(payment_method=...)`, `payment_method_data`).
- Card errors shaped like Stripe's (`type: card_error`, `decline_code`, the intent in the error).
  Test cards 4000 0000 0000 0002 and 4000 0000 0000 9995 decline when charged, as on Stripe.
- A Stripe.js with the Payment Element and `confirmPayment`/`confirmSetup` (stripe_v3.js).
- Publishable-key calls limited to what Stripe.js may do, each checked against the intent's secret.
- Each server keeps its pickled store in its own directory, never in the shared /tmp file.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import ipaddress
import logging
import pickle
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from aiohttp import web

with warnings.catch_warnings():
    # localstripe registers plain functions as handlers, which aiohttp deprecates; build_app wraps them.
    warnings.simplefilter("ignore", DeprecationWarning)
    from localstripe import server as localstripe_server
from localstripe.errors import UserError
from localstripe.resources import (
    Charge,
    Event,
    PaymentIntent,
    PaymentMethod,
    Refund,
    SetupIntent,
    Store,
    StripeObject,
    store,
    try_convert_to_bool,
    try_convert_to_int,
)
from localstripe.webhooks import schedule_webhook

from standins.clock import child_environment, follow_caller_clock

DEFAULT_PORT = 12111
JS_PATH = Path(__file__).with_name("stripe_v3.js")
ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("stripe_standin")

# Stripe's test cards that attach but decline when charged: number -> (decline_code, message).
DECLINES = {
    "4000000000000002": ("generic_decline", "Your card was declined."),
    "4000000000009995": ("insufficient_funds", "Your card has insufficient funds."),
    "4000000000000341": ("generic_decline", "Your card was declined."),
}
CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


# --- errors -------------------------------------------------------------------------------------


def _error(status: int, message: str, **fields: Any) -> UserError:
    """An error localstripe's middleware renders as Stripe does; `fields` may override `type`."""
    error = UserError(status, message)
    error.body["error"].update({name: value for name, value in fields.items() if value is not None})
    return error


def _reject_unknown(params: dict[str, Any]) -> None:
    if params:
        raise _error(400, f"Received unknown parameter: {', '.join(sorted(params))}", param=min(params))


def _require_choice(name: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise _error(400, f"Invalid {name}: must be one of {', '.join(choices)}", param=name)


def _require_status(intent: StripeObject, action: str, allowed: tuple[str, ...]) -> None:
    if intent.status not in allowed:
        raise _error(
            400,
            f"You cannot {action} this {type(intent).__name__} because it has a status of {intent.status}. "
            f"Only a {type(intent).__name__} with one of the following statuses may be {action}ed: "
            f"{', '.join(allowed)}.",
            code=f"{intent.object}_unexpected_state",
        )


def _money(amount: int, currency: str) -> str:
    value = f"{amount // 100}.{amount % 100:02d}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


def _decline(payment_method_id: str | None) -> tuple[str, str]:
    number = getattr(PaymentMethod._api_retrieve(payment_method_id), "_card_number", None)
    return DECLINES.get(number, ("generic_decline", "Your card was declined."))


def _emit(event_type: str, obj: StripeObject) -> None:
    """Record the event (listed by GET /v1/events) and send it to every registered webhook."""
    schedule_webhook(Event(event_type, obj))


# --- fields and hooks inside localstripe's resources --------------------------------------------


def _install_additions() -> None:
    """Give localstripe's resources the fields and side effects Stripe's have; safe to call twice."""
    if getattr(PaymentIntent, "_standin_installed", False):
        return
    PaymentIntent._standin_installed = True

    # Attributes every object of the kind carries, null until set, as in Stripe's responses.
    for cls, names in (
        (PaymentIntent, ("canceled_at", "cancellation_reason", "description", "receipt_email")),
        (PaymentIntent, ("setup_future_usage", "statement_descriptor", "statement_descriptor_suffix")),
        (PaymentIntent, ("automatic_payment_methods",)),
        (SetupIntent, ("automatic_payment_methods", "cancellation_reason", "description")),
        (SetupIntent, ("last_setup_error",)),
        (Refund, ("reason",)),
    ):
        for name in names:
            setattr(cls, name, None)
    PaymentIntent.payment_method_types = ("card",)

    PaymentIntent.amount_capturable = property(
        lambda self: self.amount if self.status == "requires_capture" else 0
    )
    PaymentIntent.amount_received = property(
        lambda self: self.latest_charge.amount_captured if self.status == "succeeded" else 0
    )
    Charge.amount_captured = property(
        lambda self: (
            getattr(self, "_amount_captured", self.amount)
            if self.status == "succeeded" and self.captured
            else 0
        )
    )

    original_capture = Charge._capture

    def capture(self: Charge, amount: Any, on_success: Any = None) -> None:
        captured = self.amount if amount is None else try_convert_to_int(amount)

        def record_then_succeed() -> None:
            # Set before on_success, which snapshots the PaymentIntent into payment_intent.succeeded.
            self._amount_captured = captured
            if on_success:
                on_success()

        original_capture(self, amount, on_success=record_then_succeed)

    Charge._capture = capture

    original_set_auth_failure = Charge._set_auth_failure

    def set_auth_failure(self: Charge) -> None:
        original_set_auth_failure(self)
        self.failure_message = _decline(self.payment_method)[1]

    Charge._set_auth_failure = set_auth_failure

    original_charging_is_declined = PaymentMethod._charging_is_declined
    PaymentMethod._charging_is_declined = lambda self: (
        original_charging_is_declined(self) or (self.type == "card" and self._card_number in DECLINES)
    )

    original_last_payment_error = PaymentIntent.last_payment_error.fget

    def last_payment_error(self: PaymentIntent) -> dict[str, Any] | None:
        error = original_last_payment_error(self)
        if error and "charge" in error:
            payment_method = self.latest_charge.payment_method
            error.update(
                type="card_error",
                decline_code=_decline(payment_method)[0],
                payment_method=PaymentMethod._api_retrieve(payment_method)._export(),
            )
        return error

    PaymentIntent.last_payment_error = property(last_payment_error)

    original_report_failure = PaymentIntent._report_failure

    def report_failure(self: PaymentIntent) -> None:
        try:
            original_report_failure(self)
        except UserError as error:
            error.body["error"].update(self.last_payment_error, payment_intent=self._export())
            raise

    PaymentIntent._report_failure = report_failure

    original_create_charge = PaymentIntent._create_charge

    def create_charge(self: PaymentIntent, on_failure_now: Any) -> None:
        original_create_charge(self, on_failure_now)
        if self.status == "requires_capture":
            _emit("payment_intent.amount_capturable_updated", self)

    PaymentIntent._create_charge = create_charge

    original_export = PaymentIntent._export

    def export(self: PaymentIntent, expand: list[str] | None = None) -> dict[str, Any]:
        exported = original_export(self, expand=expand)
        # Stripe sends latest_charge as an id unless it is expanded; localstripe embeds the object.
        expanded = any(path.split(".")[0] == "latest_charge" for path in expand or [])
        if isinstance(exported.get("latest_charge"), dict) and not expanded:
            exported["latest_charge"] = exported["latest_charge"]["id"]
        return exported

    PaymentIntent._export = export


def _keep_store_in(data_dir: Path) -> None:
    """Pickle the store to `data_dir` instead of the /tmp file every localstripe process shares."""
    path = data_dir / "localstripe.pickle"

    def dump_to_disk(self: Store) -> None:
        # Written aside and renamed, so a server killed mid-write leaves the previous store loadable.
        partial = path.with_suffix(".partial")
        with partial.open("wb") as file:
            pickle.dump(dict(self), file, protocol=pickle.HIGHEST_PROTOCOL)
        partial.replace(path)

    def try_load_from_disk(self: Store) -> None:
        with contextlib.suppress(FileNotFoundError):
            with path.open("rb") as file:
                saved = pickle.load(file)  # noqa: S301 - our own file, written by this server
            self.clear()
            self.update(saved)

    Store.dump_to_disk = dump_to_disk
    Store.try_load_from_disk = try_load_from_disk


# --- endpoints localstripe lacks or gets wrong --------------------------------------------------

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
        raise _error(400, "off_session can only be used with confirm=true.", param="off_session")
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
    _reject_unknown(params)
    intent = PaymentIntent._api_retrieve(id)
    _require_status(intent, "confirm", UNCONFIRMED)
    method = _payment_method(payment_method, payment_method_data)
    if method is not None:
        # A new payment method starts a new attempt, also after a declined one.
        intent.payment_method = method.id
        intent.latest_charge = None
        intent.next_action = None
        intent._authentication_failed = False
    elif intent.status == "requires_payment_method":
        raise _error(
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
    _reject_unknown(params)
    _require_choice("cancellation_reason", cancellation_reason, PI_CANCELLATION_REASONS)
    intent = PaymentIntent._api_retrieve(id)
    _require_status(intent, "cancel", (*UNCONFIRMED, "requires_capture"))
    PaymentIntent._api_cancel(id)
    intent.cancellation_reason = cancellation_reason
    intent.canceled_at = int(time.time())
    _emit("payment_intent.canceled", intent)
    return intent


def authenticate_payment_intent(id: str, **params: Any) -> PaymentIntent:
    intent = PaymentIntent._api_authenticate(id, **params)
    if intent._authentication_failed:
        _emit("payment_intent.payment_failed", intent)
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
    _reject_unknown(params)
    intent = SetupIntent._api_retrieve(id)
    _require_status(intent, "confirm", UNCONFIRMED)
    method = _payment_method(payment_method, payment_method_data)
    if method is None and intent.payment_method is None:
        raise _error(
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
            "decline_code": _decline(intent.payment_method)[0],
            "payment_method": PaymentMethod._api_retrieve(intent.payment_method)._export(),
        }
        error.body["error"].update(intent.last_setup_error, setup_intent=intent._export())
        _emit("setup_intent.setup_failed", intent)
        raise
    if intent.status == "succeeded":
        intent.last_setup_error = None
        if intent.customer:
            PaymentMethod._api_attach(intent.payment_method, customer=intent.customer)
        _emit("setup_intent.succeeded", intent)


def cancel_setup_intent(
    id: str,
    cancellation_reason: str | None = None,
    client_secret: str | None = None,
    **params: Any,
) -> SetupIntent:
    _reject_unknown(params)
    _require_choice("cancellation_reason", cancellation_reason, SI_CANCELLATION_REASONS)
    intent = SetupIntent._api_retrieve(id)
    _require_status(intent, "cancel", UNCONFIRMED)
    SetupIntent._api_cancel(id)
    intent.cancellation_reason = cancellation_reason
    _emit("setup_intent.canceled", intent)
    return intent


def create_refund(
    charge: str | None = None,
    payment_intent: str | None = None,
    amount: Any = None,
    reason: str | None = None,
    metadata: dict | None = None,
    **params: Any,
) -> Refund:
    _reject_unknown(params)
    _require_choice("reason", reason, REFUND_REASONS)
    if payment_intent is not None:
        charge_obj = PaymentIntent._api_retrieve(payment_intent).latest_charge
    elif charge is not None:
        charge_obj = Charge._api_retrieve(charge)
    else:
        raise _error(400, "One of the following params should be provided: charge or payment_intent.")
    if charge_obj is None or charge_obj.amount_captured == 0:
        raise _error(
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
        raise _error(
            400, f"Charge {charge_obj.id} has already been refunded.", code="charge_already_refunded"
        )
    amount = remaining if amount is None else try_convert_to_int(amount)
    if not isinstance(amount, int) or amount <= 0:
        raise _error(400, "Invalid positive integer", param="amount", code="parameter_invalid_integer")
    if amount > remaining:
        currency = charge_obj.currency
        limit = (
            f"charge amount ({_money(captured, currency)})"
            if refunded == 0
            else f"unrefunded amount on charge ({_money(remaining, currency)})"
        )
        raise _error(
            400, f"Refund amount ({_money(amount, currency)}) is greater than {limit}", param="amount"
        )
    refund = Refund(charge=charge_obj.id, amount=amount, metadata=metadata)
    refund.payment_intent = charge_obj.payment_intent
    refund.reason = reason
    _emit("refund.created", refund)
    _emit("charge.refunded", charge_obj)
    return refund


def update_refund(id: str, metadata: dict | None = None, **params: Any) -> Refund:
    _reject_unknown(params)
    refund = Refund._api_update(id, metadata=metadata or {})
    _emit("refund.updated", refund)
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


async def stripe_js(request: web.Request) -> web.Response:
    return web.Response(text=JS_PATH.read_text(), content_type="application/javascript")


ENDPOINTS = (
    ("POST", "/v1/payment_intents", create_payment_intent),
    ("POST", "/v1/payment_intents/{id}/confirm", confirm_payment_intent),
    ("POST", "/v1/payment_intents/{id}/cancel", cancel_payment_intent),
    ("POST", "/v1/payment_intents/{id}/_authenticate", authenticate_payment_intent),
    ("POST", "/v1/setup_intents", create_setup_intent),
    ("POST", "/v1/setup_intents/{id}/confirm", confirm_setup_intent),
    ("POST", "/v1/setup_intents/{id}/cancel", cancel_setup_intent),
    ("POST", "/v1/refunds", create_refund),
    ("POST", "/v1/refunds/{id}", update_refund),
    ("GET", "/v1/events", list_events),
    ("GET", "/v1/payment_intents", list_payment_intents),
    ("GET", "/v1/charges", list_charges),
    ("GET", "/v1/payment_methods", list_payment_methods),
)


# --- middleware ---------------------------------------------------------------------------------

# What Stripe.js may call with a publishable key; calls on an intent must also carry its client secret.
PUBLISHABLE_KEY_ROUTES = (
    ("POST", re.compile(r"/v1/(payment_methods|tokens|sources)")),
    ("POST", re.compile(r"/v1/(payment|setup)_intents/(?P<id>\w+)/(confirm|_authenticate)")),
    ("POST", re.compile(r"/v1/setup_intents/(?P<id>\w+)/cancel")),
    ("GET", re.compile(r"/v1/(payment|setup)_intents/(?P<id>\w+)")),
)


def _api_key(request: web.Request, params: dict[str, Any]) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme == "Bearer":
        return credentials
    if scheme == "Basic":
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            return base64.b64decode(credentials).decode().partition(":")[0]
    key = params.get("key")
    return key if isinstance(key, str) else ""


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Let secret keys do anything and publishable keys only what Stripe.js may do."""
    if request.path.startswith(("/js.stripe.com/", "/_config/")):
        return await handler(request)
    if request.method == "POST":
        params = await localstripe_server.get_post_data(request, remove_auth=False) or {}
    else:
        params = localstripe_server.unflatten_data(request.query)
    key = _api_key(request, params)
    if key.startswith(("sk_", "rk_")) and len(key) > 5:
        return await handler(request)
    if key.startswith("pk_"):
        for method, pattern in PUBLISHABLE_KEY_ROUTES:
            match = pattern.fullmatch(request.path)
            if match and request.method == method:
                intent_id = match.groupdict().get("id")
                if intent_id:
                    kind = SetupIntent if intent_id.startswith("seti_") else PaymentIntent
                    if params.get("client_secret") != kind._api_retrieve(intent_id).client_secret:
                        raise _error(404, f"No such {kind.object}: '{intent_id}'", param="client_secret")
                return await handler(request)
    raise _error(401, "Invalid API Key provided, or this key may not make this call.")


_idempotency_lock = asyncio.Lock()


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer a repeated Idempotency-Key with the first answer, without running the request again.

    Requests carrying a key run one at a time, so a retry racing the original waits for its answer.
    Answers of 500 and above are not kept, so such a request may be retried with the same key.
    """
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    fingerprint = hashlib.sha256(
        b"%s %s\n%s" % (request.method.encode(), request.path_qs.encode(), await request.read())
    ).hexdigest()
    async with _idempotency_lock:
        saved = store.get(f"idempotency:{key}")
        if saved is not None:
            if saved["fingerprint"] != fingerprint:
                raise _error(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were "
                    f"first used with. Try using a key other than '{key}' if you meant to execute a "
                    "different request.",
                    type="idempotency_error",
                )
            return web.Response(
                status=saved["status"],
                body=saved["body"],
                content_type="application/json",
                headers={"Idempotency-Key": key, "Idempotent-Replayed": "true"},
            )
        try:
            response = await handler(request)
        except UserError as error:
            response = error.to_response()
        if response.status < 500:
            store[f"idempotency:{key}"] = {
                "fingerprint": fingerprint,
                "status": response.status,
                "body": response.body or b"",
            }
        response.headers["Idempotency-Key"] = key
        return response


# --- serving ------------------------------------------------------------------------------------


def build_app(data_dir: Path) -> web.Application:
    """The stand-in's aiohttp application, keeping its data in `data_dir` (loaded if present)."""
    _install_additions()
    _keep_store_in(data_dir)
    store.try_load_from_disk()
    app = web.Application(
        middlewares=[
            localstripe_server.error_middleware,
            auth_middleware,
            idempotency_middleware,
            localstripe_server.save_store_middleware,
        ]
    )
    app.on_response_prepare.append(localstripe_server.add_cors_headers)
    # aiohttp matches routes in the order they were added, so ours go first and shadow localstripe's.
    replaced = {(method, path) for method, path, _ in ENDPOINTS} | {("GET", "/js.stripe.com/v3/")}
    for method, path, endpoint in ENDPOINTS:
        app.router.add_route(method, path, localstripe_server.api_extra(endpoint, path))
    app.router.add_get("/js.stripe.com/v3/", stripe_js)
    for route in localstripe_server.app.router.routes():
        method = "GET" if route.method == "HEAD" else route.method
        if (method, route.resource.canonical) not in replaced:
            app.router.add_route(route.method, route.resource.canonical, _as_coroutine(route.handler))
    return app


def _as_coroutine(handler: Any) -> Any:
    if asyncio.iscoroutinefunction(handler):
        return handler

    async def call(request: web.Request) -> web.StreamResponse:
        return handler(request)

    return call


def _require_loopback(host: str) -> None:
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"The Stripe stand-in listens on loopback only, not on {host}.")


def run(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    data_dir: Path | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, on a loopback address only.

    Data persists in `data_dir` across restarts; without one it lives in a temporary directory that
    is removed on exit. `sock` is an already bound loopback socket to serve instead of host/port.

    :raises ValueError: when asked to listen on anything but a loopback address.
    """
    _require_loopback(sock.getsockname()[0] if sock else host)
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stripe-standin-")))
        app = build_app(data_dir)
        bound_host, bound_port = sock.getsockname()[:2] if sock else (host, port)
        address = f"http://{bound_host}:{bound_port}"
        logger.info("Stripe stand-in on %s (data in %s)", address, data_dir)
        options = {"sock": sock} if sock else {"host": host, "port": port}
        web.run_app(app, print=None, shutdown_timeout=1, **options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m standins.stripe_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--data-dir", type=Path, help="keep data here across restarts (default: a temp dir)")
    parser.add_argument("--fd", type=int, help="serve this inherited, bound socket (used by StripeStandIn)")
    args = parser.parse_args(argv)
    follow_caller_clock()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.INFO)
    sock = socket.socket(fileno=args.fd) if args.fd is not None else None
    try:
        run(args.host, args.port, data_dir=args.data_dir, sock=sock)
    except ValueError as error:
        parser.error(str(error))


# --- running it from tests and the dev launcher -------------------------------------------------


@dataclass
class StripeStandIn:
    """A stand-in server in a child process; it answers as soon as `start()` returns.

    Each instance has its own data directory, so parallel test processes never share state.
    """

    url: str
    data_dir: Path
    process: subprocess.Popen

    @classmethod
    def start(cls, data_dir: Path, *, timeout: float = 30.0) -> Self:
        """Start a server on a free loopback port, keeping its data and log in `data_dir`.

        :raises RuntimeError: if the server exits or does not answer within `timeout` seconds.
        """
        data_dir.mkdir(parents=True, exist_ok=True)
        # Bound here and inherited by the child: the port is known at once and nobody can take it.
        with socket.socket() as listener, (data_dir / "stripe-standin.log").open("ab") as log:
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "standins.stripe_server"),
                    *("--fd", str(listener.fileno()), "--data-dir", str(data_dir)),
                ],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(listener.fileno(),),
                env=child_environment(),  # signs webhooks on the caller's clock, moved or not
            )
            standin = cls(f"http://127.0.0.1:{listener.getsockname()[1]}", data_dir, process)
        try:
            standin._wait_until_answering(timeout)
        except RuntimeError:
            standin.stop()
            raise
        return standin

    def _wait_until_answering(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The Stripe stand-in exited; see {self.data_dir / 'stripe-standin.log'}")
            with contextlib.suppress(OSError):
                self._call("GET", "/js.stripe.com/v3/", timeout=2)
                return
            time.sleep(0.05)
        raise RuntimeError(f"The Stripe stand-in did not answer within {timeout}s")

    def _call(
        self, method: str, path: str, data: dict[str, Any] | None = None, *, timeout: float = 10
    ) -> bytes:
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        request = urllib.request.Request(self.url + path, data=body, method=method)  # noqa: S310 - our loopback URL
        with _DIRECT.open(request, timeout=timeout) as response:
            return response.read()

    def register_webhook(
        self, url: str, secret: str, *, events: list[str] | None = None, name: str = "default"
    ) -> None:
        """Deliver events (all, or only `events`) to `url`, signed with `secret` as Stripe signs them.

        Registrations live in the server's memory: register again after a restart.
        """
        data: dict[str, Any] = {"url": url, "secret": secret}
        if events is not None:
            data["events[]"] = events
        self._call("POST", f"/_config/webhooks/{urllib.parse.quote(name)}", data)

    def reset(self) -> None:
        """Forget every object and idempotency key (webhook registrations stay)."""
        self._call("DELETE", "/_config/data")

    def stop(self) -> None:
        """Stop the server and wait for it to exit."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# Calls to the stand-in go straight to loopback, whatever proxy the environment names.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


if __name__ == "__main__":
    main()
