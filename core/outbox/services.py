import enum
import json
import logging
import traceback
from datetime import datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction

from core.broker import task_publish_once
from core.outbox import locks
from core.outbox.models import OutboxMessage
from core.outbox.registry import handler_get, handlers_for_topic
from core.transactions import require_atomic

logger = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_MAX = timedelta(hours=1)


class Delivery(enum.StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # the handler raised; retried after a back-off
    DEAD = "dead"  # the handler failed for the last time
    SKIPPED = "skipped"  # delivered already, not yet due, or another deliverer holds it


def outbox_enqueue(
    *, topic: str, payload: dict[str, Any], now: datetime, key: str | None = None
) -> list[OutboxMessage]:
    """Write a message for every handler of *topic*, in the caller's transaction.

    Nothing is sent unless the caller commits. After the commit the relay task is asked (unless one
    is already queued) to deliver everything pending at once; if Redis or the workers are away, the
    periodic sweeper delivers them later.
    With *key*, a message already written for the same handler and key is not written again; only
    the messages actually written are returned.

    :raises TransactionRequired: outside `transaction.atomic()`.
    """
    require_atomic("outbox_enqueue")
    handlers = [h for h in handlers_for_topic(topic) if h.wanted is None or h.wanted(payload)]
    if not handlers:
        return []
    created = _enqueue(topic=topic, payload=payload, now=now, key=key, handlers=handlers)
    if created:
        transaction.on_commit(_relay_nudge)
    return created


def _enqueue(
    *, topic: str, payload: dict, now: datetime, key: str | None, handlers: list
) -> list[OutboxMessage]:
    """Write the messages in one statement, without a savepoint (a booking writes them while its
    places are locked). With a key, the unique index on (handler, key) drops those written already,
    also those a concurrent transaction is writing (PostgreSQL waits for it to finish); a read first
    and a savepoint around the insert cost three more round trips, on every door scan. Plain SQL:
    the ORM spent more building the insert than PostgreSQL running it."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO core_outboxmessage
                (topic, handler, payload, key, status, attempts, created_at, available_at, last_error)
            SELECT %s, handler, %s::jsonb, %s, %s, 0, %s, %s, '' FROM unnest(%s::text[]) AS handler
            ON CONFLICT (handler, key) WHERE key IS NOT NULL DO NOTHING
            RETURNING id, handler
            """,
            [
                topic,
                json.dumps(payload, cls=DjangoJSONEncoder),
                key,
                OutboxMessage.Status.PENDING,
                now,
                now,
                [h.name for h in handlers],
            ],
        )
        written = cursor.fetchall()
    return [
        OutboxMessage(
            id=pk, topic=topic, handler=handler, payload=payload, key=key, created_at=now, available_at=now
        )
        for pk, handler in written
    ]


# One relay task delivers everything pending when it starts, so a rush of bookings queues one task
# at a time instead of one per booking (a Celery publish cost the booking request ~1.7 ms).
RELAY_TASK = "core.tasks.outbox_relay"
RELAY_MARKER = "outbox:relay-queued"
RELAY_MARKER_SECONDS = 5


def _relay_nudge() -> None:
    # The commit already happened; if the broker is away the sweeper delivers the messages.
    task_publish_once(RELAY_TASK, marker=RELAY_MARKER, ttl_seconds=RELAY_MARKER_SECONDS)


class _HandlerFailed(Exception):
    def __init__(self, error_text: str) -> None:
        super().__init__(error_text)
        self.error_text = error_text


def outbox_message_deliver(*, message_id: int, now: datetime) -> Delivery:
    """Run the handler of one message at most once to completion.

    The message row stays locked while its handler runs and is marked delivered in the same
    transaction as the handler's own writes, so a handler that finished is never run again. A
    handler that raises has its writes rolled back with that transaction, then the attempt is
    counted and the next one scheduled with exponential back-off in a transaction of its own; after
    its last attempt the message is marked dead. (No savepoint around the handler, nor around the
    use case it runs: on sale day each booking delivers three messages, and a savepoint is two more
    round trips each.) A handler must therefore not catch a database error and carry on.
    """
    try:
        with transaction.atomic(durable=True):
            message = locks.lock_pending_message(message_id=message_id)
            if message is None or message.available_at > now:
                return Delivery.SKIPPED
            handler = handler_get(message.handler)
            # the handler's use case needs no savepoint of its own (core.transactions): nothing here
            # catches what it raises, the whole delivery rolls back
            connection.atomic_blocks[-1]._delivery = True
            try:
                if handler is None:
                    raise LookupError(
                        f"No outbox handler named {message.handler!r} is registered in this process."
                    )
                handler(message, now=now)
            except Exception as error:  # any handler failure: recorded below and retried, never lost
                raise _HandlerFailed(traceback.format_exc(limit=8)[-4000:]) from error
            message.attempts += 1
            message.status = OutboxMessage.Status.DELIVERED
            message.delivered_at = now
            _mark_delivered(message)
    except _HandlerFailed as failure:
        return _delivery_failed(message_id=message_id, now=now, error_text=failure.error_text)
    logger.info("Outbox message %s (%s -> %s) delivered.", message.pk, message.topic, message.handler)
    return Delivery.DELIVERED


def _mark_delivered(message: OutboxMessage) -> None:
    # plain SQL for the same reason as the insert: once per delivery, the ORM's update cost more
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE core_outboxmessage SET attempts = %s, status = %s, delivered_at = %s WHERE id = %s",
            [message.attempts, message.status, message.delivered_at, message.pk],
        )


def _delivery_failed(*, message_id: int, now: datetime, error_text: str) -> Delivery:
    """Count a failed attempt and schedule the next (or give up), unless someone else took the
    message meanwhile (its lock was let go when the failed attempt rolled back): delivered it, or
    failed with it and already counted and rescheduled that attempt."""
    with transaction.atomic(durable=True):
        message = locks.lock_pending_message(message_id=message_id)
        if message is None or message.available_at > now:
            return Delivery.SKIPPED
        handler = handler_get(message.handler)
        message.attempts += 1
        message.last_error = error_text
        if message.attempts >= (handler.max_attempts if handler else 1):
            message.status = OutboxMessage.Status.DEAD
            outcome = Delivery.DEAD
            logger.error("Outbox message %s failed for the last time:\n%s", message.pk, message.last_error)
        else:
            message.available_at = now + outbox_backoff(attempts=message.attempts)
            outcome = Delivery.FAILED
            logger.warning("Outbox message %s failed (attempt %s), retrying.", message.pk, message.attempts)
        message.save(update_fields=["attempts", "last_error", "status", "available_at"])
    return outcome


def outbox_backoff(*, attempts: int) -> timedelta:
    """Wait 5 s after the first failure, doubling up to an hour."""
    return min(BACKOFF_BASE * 2 ** (attempts - 1), BACKOFF_MAX)


def outbox_sweep(*, now: datetime, limit: int = 500) -> dict[str, int]:
    """Deliver pending messages that are due: those the after-commit task missed, and retries.

    Safe to run on several workers at once: each message is locked with SKIP LOCKED while delivered.
    """
    due = list(
        OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING, available_at__lte=now)
        .order_by("available_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    return outbox_messages_deliver(message_ids=due, now=now)


def outbox_messages_deliver(*, message_ids: list[int], now: datetime) -> dict[str, int]:
    """Deliver each message in turn (each in its own transaction); count the outcomes."""
    counts = {outcome.value: 0 for outcome in Delivery}
    for message_id in message_ids:
        counts[outbox_message_deliver(message_id=message_id, now=now)] += 1
    return counts


def outbox_message_retry(*, message: OutboxMessage, now: datetime) -> OutboxMessage:
    """Give a dead (or backed-off) message another go now, e.g. after staff fixed its cause."""
    with transaction.atomic(durable=True):
        updated = OutboxMessage.objects.filter(
            pk=message.pk, status__in=[OutboxMessage.Status.PENDING, OutboxMessage.Status.DEAD]
        ).update(status=OutboxMessage.Status.PENDING, available_at=now)
        if updated:
            transaction.on_commit(_relay_nudge)
    message.refresh_from_db()
    return message
