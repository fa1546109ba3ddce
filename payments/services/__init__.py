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

One module per rule (see each module's opening line); this package re-exports every public service
so callers import from `payments.services` as before.
"""

from payments.services.authorizations import (
    arrival_capture,
    authorization_capture,
    authorization_release,
    no_show_fee_charge,
    no_show_record,
)
from payments.services.checkout import Checkout, balance_reminders_due, checkout_prepare
from payments.services.errors import NotPayable, PaymentError, RefundTooLarge
from payments.services.intents import payment_intent_sync, payment_refresh
from payments.services.reconciliation import PaymentDrift, payments_reconcile
from payments.services.refunds import payment_refund, refund_sync
from payments.services.settlement import cancellation_settle, resale_seller_refund, unplaceable_payment_return
from payments.services.webhooks import PAYMENT_EVENTS, REFUND_EVENTS, webhook_event_handle

__all__ = [
    "PAYMENT_EVENTS",
    "REFUND_EVENTS",
    "Checkout",
    "NotPayable",
    "PaymentDrift",
    "PaymentError",
    "RefundTooLarge",
    "arrival_capture",
    "authorization_capture",
    "authorization_release",
    "balance_reminders_due",
    "cancellation_settle",
    "checkout_prepare",
    "no_show_fee_charge",
    "no_show_record",
    "payment_intent_sync",
    "payment_refresh",
    "payment_refund",
    "payments_reconcile",
    "refund_sync",
    "resale_seller_refund",
    "unplaceable_payment_return",
    "webhook_event_handle",
]
