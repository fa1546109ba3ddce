"""The one place the Stripe client is built: real Stripe with real keys, the local stand-in otherwise.

Every call that creates or changes something passes an idempotency key derived from what caused it
(the booking and the attempt, the refund row, the outbox message), so a retry after a timeout or a
crash can never charge or refund twice.
"""

import functools
from typing import Any

import stripe
from django.conf import settings

from core.errors import ApplicationError


class PaymentsUnavailable(ApplicationError):
    default_code = "payments_unavailable"


@functools.cache
def _client(key: str, base: str) -> stripe.StripeClient:
    if not key:
        raise PaymentsUnavailable("Online payment is not set up yet. Please contact us to book.")
    bases = {"api": base} if base else None
    # The stand-in speaks plain HTTP on loopback; real Stripe gets the library's defaults.
    return stripe.StripeClient(key, base_addresses=bases, max_network_retries=2)


def stripe_client() -> stripe.StripeClient:
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)


def as_dict(obj: Any) -> dict:
    """stripe-python objects are not dicts since v13; handlers work on plain data."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
