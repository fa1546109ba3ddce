"""Our payment records checked against Stripe's, and the differences listed for staff. Locks
nothing; it reads, and `payment_intent_sync` repairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from payments.models import Payment
from payments.services.intents import payment_intent_sync, payment_refresh
from payments.services.refunds import refund_sync
from payments.stripe_client import as_dict, stripe_client


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
