from core.outbox.models import OutboxMessage
from core.transactions import require_atomic


def lock_pending_message(*, message_id: int) -> OutboxMessage | None:
    """Lock one pending message for delivery, or return None when it is not ours to deliver.

    SKIP LOCKED makes a second deliverer (the after-commit task racing the sweeper, or a task that
    Redis handed out twice) walk away instead of queueing behind the first and running the handler
    again once the lock is released.
    """
    require_atomic("lock_pending_message")
    # A raw query: every delivery (three per booking on sale day) runs it, and the ORM spent longer
    # building this statement than PostgreSQL running it.
    found = OutboxMessage.objects.raw(
        "SELECT * FROM core_outboxmessage WHERE id = %s AND status = %s FOR UPDATE SKIP LOCKED",
        [message_id, OutboxMessage.Status.PENDING],
    )
    return next(iter(found), None)
