from django.apps import AppConfig


class CalendarSyncConfig(AppConfig):
    """Google, Outlook and CalDAV connections: busy time in, bookings out."""

    name = "calendarsync"
    verbose_name = "Calendar sync"

    def ready(self) -> None:
        from calendarsync import handlers  # noqa: F401 - subscribes the app's outbox handlers
