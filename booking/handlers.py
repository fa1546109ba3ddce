"""Outbox handlers of booking, registered when the app is ready."""

from booking.services import waitlist_offer_next
from core.outbox.registry import outbox_handler


@outbox_handler("session.places_freed", name="booking.offer_freed_places_to_waitlist")
def offer_freed_places_to_waitlist(message, *, now) -> None:
    """Places came free (expiry, cancellation, reschedule, more capacity): offer them to the waitlist."""
    waitlist_offer_next(session_id=message.payload["session_id"], now=now)
