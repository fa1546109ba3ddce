from django.apps import AppConfig


class BookingConfig(AppConfig):
    """Customers, bookings and their items, holds, waitlist, cancellation and rescheduling,
    confirmations and reminders.
    """

    name = "booking"
    verbose_name = "Bookings"

    def ready(self) -> None:
        from booking import handlers  # noqa: F401 - subscribes the app's outbox handlers
