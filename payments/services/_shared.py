"""Helpers the payment services share: the timeline entry for a money event, Stripe's error as a
sentence, an id from an expanded or plain Stripe field. Locks nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import stripe

from booking.models import Booking
from core.audit.services import timeline_entry_record


def _record(booking: Booking, action: str, now: datetime, *, actor: str = "stripe", acting_user=None, **data):
    timeline_entry_record(
        subject=booking, action=action, now=now, actor=actor, acting_user=acting_user, data=data
    )


def _stripe_error_message(error: stripe.StripeError) -> str:
    return getattr(error, "user_message", None) or str(error) or "The payment provider refused the request."


def _id(value: Any) -> str:
    return (value.get("id") if isinstance(value, dict) else value) or ""
