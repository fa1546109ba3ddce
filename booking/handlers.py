"""Outbox handlers of booking, registered when the app is ready."""

from booking.services import email_send, notifications_dispatch, waitlist_offer_next
from core.outbox.registry import outbox_handler


@outbox_handler("session.places_freed", name="booking.offer_freed_places_to_waitlist")
def offer_freed_places_to_waitlist(message, *, now) -> None:
    """Places came free (expiry, cancellation, reschedule, more capacity): offer them to the waitlist."""
    waitlist_offer_next(session_id=message.payload["session_id"], now=now)


NOTIFYING_TOPICS = (
    "booking.confirmed",
    "booking.held",
    "booking.payment_failed",
    "booking.rescheduled",
    "booking.cancelled",
    "waitlist.offered",
    "payments.balance_due",
    "payments.money_returned",
)


def _dispatch(message, *, now) -> None:
    notifications_dispatch(topic=message.topic, payload=message.payload, now=now)


def _confirmation_told_here(payload: dict) -> bool:
    return not payload.get("confirmation_carried")  # else a higher app sends it (`confirmation_carried`)


for _topic in NOTIFYING_TOPICS:
    wanted = _confirmation_told_here if _topic == "booking.confirmed" else None
    outbox_handler(_topic, name=f"booking.notify.{_topic}", wanted=wanted)(_dispatch)


@outbox_handler("email.send", name="booking.send_email")
def send_email(message, *, now) -> None:
    """Send exactly one email; a failure retries this email alone, never the others of the same event."""
    payload = message.payload
    email_send(
        booking_id=payload["booking_id"],
        kind=payload["kind"],
        to=payload["to"],
        extra=payload.get("extra", {}),
        now=now,
        sequence=payload.get("sequence"),
    )
