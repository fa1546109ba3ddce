from celery import shared_task
from django.utils import timezone

from core.broker import task_marker_clear
from core.health import worker_heartbeat_record
from core.outbox.services import RELAY_MARKER, outbox_messages_deliver, outbox_sweep


@shared_task(name="core.tasks.outbox_relay")
def outbox_relay(**kwargs) -> dict[str, int]:
    """Deliver everything pending, nudged by a commit that wrote outbox messages.

    The marker is cleared before the clock is read and the pending rows listed: whatever was
    committed while it was set is due by then and delivered here.
    """
    task_marker_clear(RELAY_MARKER)
    return outbox_sweep(now=timezone.now())


# Tasks queued by processes of an earlier release, which named the messages to deliver.
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
