"""The fields and side effects Stripe's objects have and localstripe's lack, installed into its resources.

Amounts captured and capturable, partial captures that release the rest, the events Stripe sends
(`charge.refunded`, `setup_intent.succeeded`...), card errors shaped like Stripe's with its test
cards that decline when charged, and a store pickled in each server's own directory.
"""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path
from typing import Any

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
    try_convert_to_int,
)
from localstripe.webhooks import schedule_webhook

# Stripe's test cards that attach but decline when charged: number -> (decline_code, message).
DECLINES = {
    "4000000000000002": ("generic_decline", "Your card was declined."),
    "4000000000009995": ("insufficient_funds", "Your card has insufficient funds."),
    "4000000000000341": ("generic_decline", "Your card was declined."),
}
CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


# --- errors -------------------------------------------------------------------------------------


def stripe_error(status: int, message: str, **fields: Any) -> UserError:
    """An error localstripe's middleware renders as Stripe does; `fields` may override `type`."""
    error = UserError(status, message)
    error.body["error"].update({name: value for name, value in fields.items() if value is not None})
    return error


def reject_unknown(params: dict[str, Any]) -> None:
    if params:
        raise stripe_error(400, f"Received unknown parameter: {', '.join(sorted(params))}", param=min(params))


def require_choice(name: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise stripe_error(400, f"Invalid {name}: must be one of {', '.join(choices)}", param=name)


def require_status(intent: StripeObject, action: str, allowed: tuple[str, ...]) -> None:
    if intent.status not in allowed:
        raise stripe_error(
            400,
            f"You cannot {action} this {type(intent).__name__} because it has a status of {intent.status}. "
            f"Only a {type(intent).__name__} with one of the following statuses may be {action}ed: "
            f"{', '.join(allowed)}.",
            code=f"{intent.object}_unexpected_state",
        )


def money_text(amount: int, currency: str) -> str:
    value = f"{amount // 100}.{amount % 100:02d}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


def card_decline(payment_method_id: str | None) -> tuple[str, str]:
    number = getattr(PaymentMethod._api_retrieve(payment_method_id), "_card_number", None)
    return DECLINES.get(number, ("generic_decline", "Your card was declined."))


def emit_event(event_type: str, obj: StripeObject) -> None:
    """Record the event (listed by GET /v1/events) and send it to every registered webhook."""
    schedule_webhook(Event(event_type, obj))


def install_additions() -> None:
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
        self.failure_message = card_decline(self.payment_method)[1]

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
                decline_code=card_decline(payment_method)[0],
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
            emit_event("payment_intent.amount_capturable_updated", self)

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


def keep_store_in(data_dir: Path) -> None:
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
