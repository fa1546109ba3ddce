from django.apps import AppConfig


class TicketingConfig(AppConfig):
    """Tickets with signed QR codes, transfer and resale, check-in lists and the door scanner."""

    name = "ticketing"
    verbose_name = "Tickets and check-in"

    def ready(self) -> None:
        # Subscribes the outbox handlers, answers hooks, and registers the ticket emails.
        from ticketing import handlers, hooks, notifications  # noqa: F401
