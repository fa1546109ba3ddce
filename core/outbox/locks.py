from core.outbox.models import OutboxMessage
from core.transactions import require_atomic


def lock_pending_message(*, message_id: int) -> OutboxMessage | None:
    """Lock one pending message for delivery, or return None when it is not ours to deliver.

    SKIP LOCKED makes a second deliverer (the after-commit task racing the sweeper, or a task that
    Redis handed out twice) walk away instead of queueing behind the first and running the handler
    again once the lock is released.
    """
    require_atomic("lock_pending_message")
    return (
        OutboxMessage.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(pk=message_id, status=OutboxMessage.Status.PENDING)
        .first()
    )
