from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """Payment plans, Stripe intents, webhooks, refunds and reconciliation."""

    name = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        from payments import handlers, hooks  # noqa: F401 - subscribes outbox handlers and page hooks
