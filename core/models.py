from core.audit.models import TimelineEntry
from core.outbox.models import OutboxMessage

__all__ = ["OutboxMessage", "TimelineEntry"]
