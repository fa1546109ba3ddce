from django.apps import AppConfig


class InventoryConfig(AppConfig):
    """Locations, resources, schedules, offerings, sessions,
    capacity counters and allocations; the availability engine and search.
    """

    name = "inventory"
    verbose_name = "Inventory"

    def ready(self) -> None:
        from inventory import handlers  # noqa: F401 - subscribes the app's outbox handlers
