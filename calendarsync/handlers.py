"""Outbox handlers of calendarsync: bookings follow into calendars; broken grants are reported."""

from calendarsync.services import calendar_booking_push, connection_notify_reconnect
from core.outbox.registry import outbox_handler

BOOKING_TOPICS = (
    "booking.confirmed",
    "booking.rescheduled",
    "booking.cancelled",
    "booking.refunded",
    "booking.expired",
    "booking.attendees_changed",
)


def _push(message, *, now) -> None:
    """Create, move or delete the booking's event in its resources' two-way calendars."""
    calendar_booking_push(booking_id=message.payload["booking_id"], now=now)


for _topic in BOOKING_TOPICS:
    outbox_handler(_topic, name=f"calendarsync.push.{_topic}")(_push)


@outbox_handler("calendar.needs_reconnect", name="calendarsync.notify_reconnect")
def notify_reconnect(message, *, now) -> None:
    connection_notify_reconnect(
        connection_id=message.payload["connection_id"], error=message.payload["error"]
    )
