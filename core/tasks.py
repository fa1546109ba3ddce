from celery import shared_task
from django.utils import timezone

from core.health import worker_heartbeat_record
from core.outbox.services import outbox_messages_deliver, outbox_sweep


@shared_task(name="core.tasks.outbox_deliver")
def outbox_deliver(*, message_ids: list[int], **kwargs) -> dict[str, int]:
    """Deliver messages right after the transaction that wrote them committed."""
    return outbox_messages_deliver(message_ids=message_ids, now=timezone.now())


@shared_task(name="core.tasks.outbox_sweep")
def outbox_sweep_task(**kwargs) -> dict[str, int]:
    """Deliver what the after-commit tasks missed and what is due for a retry (run by beat)."""
    return outbox_sweep(now=timezone.now())


@shared_task(name="core.tasks.worker_heartbeat", bind=True)
def worker_heartbeat(self, **kwargs) -> None:
    """Tell /healthz a worker is taking tasks (run by beat)."""
    worker_heartbeat_record(now=timezone.now(), hostname=self.request.hostname or "unknown")
