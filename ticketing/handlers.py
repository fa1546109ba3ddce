"""Outbox handlers of ticketing: tickets follow their booking, exactly once per change."""

from core.outbox.registry import outbox_handler
from ticketing.services import resale_complete, resale_release, tickets_sync, transfer_fee_settled

TICKETS_FOLLOW = (
    "booking.confirmed",
    "booking.cancelled",
    "booking.refunded",
    "booking.expired",
    "booking.rescheduled",
    "booking.attendees_changed",
)


def _sync(message, *, now) -> None:
    """Issue, revoke or re-issue the booking's tickets so they match it (a no-op when they do)."""
    tickets_sync(
        booking_id=message.payload["booking_id"],
        now=now,
        reason=message.topic.split(".", 1)[1],
        sequence=message.payload.get("sequence"),
    )


for _topic in TICKETS_FOLLOW:
    outbox_handler(_topic, name=f"ticketing.sync.{_topic}")(_sync)


def _release_resale(message, *, now) -> None:
    """A resale buyer's hold ended unpaid: the ticket goes back on sale."""
    resale_release(buyer_booking_id=message.payload["booking_id"], now=now)


for _topic in ("booking.expired", "booking.cancelled"):
    outbox_handler(_topic, name=f"ticketing.resale_release.{_topic}")(_release_resale)


@outbox_handler("booking.resale.completed", name="ticketing.resale_complete")
def complete_resale(message, *, now) -> None:
    payload = message.payload
    resale_complete(
        seller_booking_id=payload["booking_id"],
        item_id=payload["item_id"],
        buyer_booking_id=payload["buyer_booking_id"],
        now=now,
    )


def _fee_settled(message, *, now) -> None:
    reference = message.payload.get("reference", "")
    if reference.startswith("ticket-transfer-"):
        transfer_fee_settled(charge_reference=reference, paid=message.topic.endswith(".paid"), now=now)


for _topic in ("booking.charge.paid", "booking.charge.cancelled"):
    outbox_handler(_topic, name=f"ticketing.transfer_fee.{_topic}")(_fee_settled)
