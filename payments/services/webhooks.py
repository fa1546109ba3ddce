"""Stripe's webhook events, each handled once (stored by event id) and routed to the intent or refund
it is about. Locks what the handler it calls locks.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError

from core.transactions import service_transaction
from payments.models import WebhookEvent
from payments.services._shared import _id
from payments.services.intents import payment_intent_sync
from payments.services.refunds import refund_sync
from payments.stripe_client import as_dict, stripe_client

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
