from django.apps import AppConfig


class TicketingConfig(AppConfig):
    """Tickets with signed QR codes, transfer and resale, check-in lists and the door scanner."""

    name = "ticketing"
    verbose_name = "Tickets and check-in"

    def ready(self) -> None:
        from ticketing import handlers  # noqa: F401 - subscribes the app's outbox handlers
