from django.db.models import Count, QuerySet

from core.outbox.models import OutboxMessage


def outbox_backlog() -> dict[str, int]:
    """How many messages wait, by status (for health and admin)."""
    counts = dict(
        OutboxMessage.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return {status.value: counts.get(status.value, 0) for status in OutboxMessage.Status}


def outbox_list_for_topic(*, topic: str) -> QuerySet[OutboxMessage]:
    return OutboxMessage.objects.filter(topic=topic).order_by("created_at", "id")
