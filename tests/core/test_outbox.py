"""The transactional outbox: what a committed change announces is delivered, once; nothing else is."""

import json
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from core.outbox import locks
from core.outbox.models import OutboxMessage
from core.outbox.registry import outbox_handler
from core.outbox.services import (
    Delivery,
    outbox_enqueue,
    outbox_message_deliver,
    outbox_message_retry,
    outbox_sweep,
)
from core.redis import redis_client
from core.tasks import outbox_relay, outbox_sweep_task
from tests.conftest import celery_broker, running_worker, wait_until

# --- handlers these tests subscribe: each records its runs in Redis, outside any DB transaction,
# --- the way an email or an API call would leave a trace that no rollback can take back.


def runs_of(run: str) -> int:
    return redis_client().llen(f"outbox-test:{run}")


def delivered(run: str) -> bool:
    """The message of this run is marked delivered (committed after its handler has run)."""
    return OutboxMessage.objects.filter(payload__run=run, status=OutboxMessage.Status.DELIVERED).exists()


def _record_run(message) -> None:
    redis_client().rpush(f"outbox-test:{message.payload['run']}", message.pk)


@outbox_handler("test.recorded")
def record(message, *, now):
    _record_run(message)


@outbox_handler("test.only_for_vips", wanted=lambda payload: payload.get("vip", False))
def record_for_vips(message, *, now):
    _record_run(message)


@outbox_handler("test.recorded_slowly")
def record_slowly(message, *, now):
    _record_run(message)
    time.sleep(0.4)  # long enough for a racing deliverer to arrive while this one still runs


@outbox_handler("test.fails_twice")
def fail_twice_then_record(message, *, now):
    attempt = redis_client().incr(f"outbox-test-attempt:{message.payload['run']}")
    if attempt <= 2:
        raise ConnectionError(f"mail server unreachable (attempt {attempt})")
    _record_run(message)


@outbox_handler("test.always_fails", max_attempts=3)
def always_fail(message, *, now):
    raise ConnectionError("calendar provider is down")


@outbox_handler("test.fans_out")
def fan_out_ok(message, *, now):
    _record_run(message)


@outbox_handler("test.fans_out")
def fan_out_broken(message, *, now):
    raise ConnectionError("second subscriber is down")


def enqueue_committed(topic: str, now, **payload) -> tuple[str, list[OutboxMessage]]:
    run = uuid.uuid4().hex
    with transaction.atomic():
        messages = outbox_enqueue(topic=topic, payload={"run": run, **payload}, now=now)
    return run, messages


# --- delivery after commit ----------------------------------------------------------------------


def test_a_committed_message_is_delivered_by_the_worker_and_a_rolled_back_one_never(celery_worker):
    rolled_back_run = uuid.uuid4().hex
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox_enqueue(topic="test.recorded", payload={"run": rolled_back_run}, now=timezone.now())
        raise RuntimeError("the booking failed after the message was written")

    committed_run, _ = enqueue_committed("test.recorded", timezone.now())

    # The worker takes tasks in order: once the committed message is delivered, anything the
    # rolled-back transaction might have published would have been handled too. (Delivered is
    # committed just after the handler ran, so wait for that, not for the handler's own trace.)
    wait_until(lambda: delivered(committed_run))
    assert runs_of(committed_run) == 1
    assert not OutboxMessage.objects.filter(payload__run=rolled_back_run).exists()
    assert outbox_sweep(now=timezone.now() + timedelta(hours=1))["delivered"] == 0
    assert runs_of(rolled_back_run) == 0


def queued_relays() -> int:
    """Relay tasks waiting in the broker's queue (kombu keeps it as a Redis list named "celery")."""
    tasks = [json.loads(raw)["headers"]["task"] for raw in redis_client().lrange("celery", 0, -1)]
    return tasks.count("core.tasks.outbox_relay")


@pytest.mark.django_db(transaction=True)
def test_a_rush_of_commits_queues_one_relay_which_delivers_all_that_was_committed_before_it_ran():
    from config.celery import app

    app.control.purge()
    runs = [enqueue_committed("test.recorded", timezone.now())[0] for _ in range(5)]
    assert queued_relays() == 1  # five bookings, one task: the others found it queued

    outbox_relay()  # the worker takes that task

    assert all(delivered(run) for run in runs) and [runs_of(run) for run in runs] == [1] * 5
    enqueue_committed("test.recorded", timezone.now())
    assert queued_relays() == 2  # the relay said it had started: the next commit queues the next one


@pytest.mark.django_db(transaction=True)
def test_a_message_written_while_redis_is_down_is_delivered_once_redis_is_back(private_redis):
    with celery_broker(private_redis.url()):
        private_redis.ensure_started()
        with running_worker():
            private_redis.stop()  # Redis goes away under a running worker

            run, _ = enqueue_committed("test.recorded", timezone.now())  # the booking still commits
            message = OutboxMessage.objects.get(payload__run=run)
            assert message.status == OutboxMessage.Status.PENDING
            assert runs_of(run) == 0

            private_redis.ensure_started()  # Redis is back (empty: it kept nothing on disk)
            outbox_sweep_task.delay()  # what beat sends every few seconds

            wait_until(lambda: delivered(run), timeout=30)
    message.refresh_from_db()
    assert (runs_of(run), message.attempts) == (1, 1)


# --- retries and back-off -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_failing_handler_is_retried_with_growing_back_off_until_it_succeeds(now):
    run, [message] = enqueue_committed("test.fails_twice", now)

    assert outbox_message_deliver(message_id=message.pk, now=now) == Delivery.FAILED
    message.refresh_from_db()
    assert message.attempts == 1
    assert message.available_at == now + timedelta(seconds=5)
    assert "mail server unreachable (attempt 1)" in message.last_error

    # Not due yet: the sweeper leaves it alone.
    assert outbox_sweep(now=now + timedelta(seconds=4))["failed"] == 0

    assert outbox_sweep(now=now + timedelta(seconds=5))["failed"] == 1
    message.refresh_from_db()
    assert message.attempts == 2
    assert message.available_at == now + timedelta(seconds=5 + 10)

    assert outbox_sweep(now=now + timedelta(seconds=15))["delivered"] == 1
    message.refresh_from_db()
    assert message.status == OutboxMessage.Status.DELIVERED
    assert message.attempts == 3
    assert runs_of(run) == 1


@pytest.mark.django_db(transaction=True)
def test_a_handler_that_keeps_failing_is_marked_dead_and_staff_can_retry_it(now):
    _, [message] = enqueue_committed("test.always_fails", now)
    at = now
    for _ in range(3):
        outbox_message_deliver(message_id=message.pk, now=at)
        at += timedelta(hours=2)
    message.refresh_from_db()
    assert message.status == OutboxMessage.Status.DEAD
    assert message.attempts == 3
    assert outbox_sweep(now=at + timedelta(days=1))["failed"] == 0  # dead messages wait for a person

    outbox_message_retry(message=message, now=at)
    assert message.status == OutboxMessage.Status.PENDING
    assert message.available_at == at


@pytest.mark.django_db(transaction=True)
def test_each_subscriber_is_retried_alone_so_the_one_that_worked_never_runs_again(now):
    run, messages = enqueue_committed("test.fans_out", now)
    assert len(messages) == 2
    for _ in range(3):
        outbox_sweep(now=now)
        now += timedelta(hours=2)
    statuses = {
        m.handler.rsplit(".", 1)[-1]: m.status for m in OutboxMessage.objects.filter(payload__run=run)
    }
    assert statuses == {"fan_out_ok": "delivered", "fan_out_broken": "pending"}
    assert runs_of(run) == 1


# --- never twice --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_delivered_message_is_never_handled_again(now):
    run, [message] = enqueue_committed("test.recorded", now)
    assert outbox_message_deliver(message_id=message.pk, now=now) == Delivery.DELIVERED
    # The after-commit task, a Redis redelivery, the sweeper and a staff retry all arrive later:
    assert outbox_message_deliver(message_id=message.pk, now=now) == Delivery.SKIPPED
    assert outbox_sweep(now=now + timedelta(days=1))["delivered"] == 0
    outbox_message_retry(message=message, now=now)
    assert outbox_message_deliver(message_id=message.pk, now=now) == Delivery.SKIPPED
    assert runs_of(run) == 1


def _deliver_concurrently(message_id: int, now, deliverers: int = 2) -> list[Delivery]:
    barrier = threading.Barrier(deliverers)
    outcomes: list[Delivery] = []

    def deliver():
        barrier.wait()
        try:
            outcomes.append(outbox_message_deliver(message_id=message_id, now=now))
        except Exception as exc:  # noqa: BLE001 - the negative control may end in a unique violation
            outcomes.append(type(exc).__name__)
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(deliverers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_two_deliverers_racing_for_one_message_run_its_handler_once(now):
    run, [message] = enqueue_committed("test.recorded_slowly", now)
    outcomes = _deliver_concurrently(message.pk, now)
    assert sorted(outcomes) == [Delivery.DELIVERED, Delivery.SKIPPED]
    assert runs_of(run) == 1


@pytest.mark.django_db(transaction=True)
def test_negative_control_without_the_row_lock_the_race_runs_the_handler_twice(now, monkeypatch):
    """Remove the guard (SELECT ... FOR UPDATE SKIP LOCKED) and the race above is lost."""

    def lock_nothing(*, message_id):
        return OutboxMessage.objects.filter(pk=message_id, status=OutboxMessage.Status.PENDING).first()

    monkeypatch.setattr(locks, "lock_pending_message", lock_nothing)
    run, [message] = enqueue_committed("test.recorded_slowly", now)
    _deliver_concurrently(message.pk, now)
    assert runs_of(run) == 2


# --- the contract with callers ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_enqueue_refuses_to_run_outside_a_transaction(now):
    from core.errors import TransactionRequired

    with pytest.raises(TransactionRequired, match="inside the caller's transaction"):
        outbox_enqueue(topic="test.recorded", payload={"run": "x"}, now=now)
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_keyed_message_is_written_once_however_often_it_is_enqueued(now):
    run = uuid.uuid4().hex
    for _ in range(3):
        with transaction.atomic():
            outbox_enqueue(topic="test.recorded", payload={"run": run}, now=now, key=f"reminder:{run}:24h")
    assert OutboxMessage.objects.filter(payload__run=run).count() == 1


def enqueue_twice_at_once(key: str, run: str, now) -> list[list]:
    """Two transactions enqueue the same key; the second writes while the first is still open."""
    first_wrote, results = threading.Event(), [None, None]

    def first():
        with transaction.atomic():
            results[0] = outbox_enqueue(topic="test.recorded", payload={"run": run}, now=now, key=key)
            first_wrote.set()
            time.sleep(0.3)  # the second is now waiting on the unique index, or has written its own

    def second():
        first_wrote.wait(5)
        with transaction.atomic():
            results[1] = outbox_enqueue(topic="test.recorded", payload={"run": run}, now=now, key=key)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_transactions_enqueueing_one_key_at_once_write_it_once_and_neither_fails(now):
    run = uuid.uuid4().hex
    first, second = enqueue_twice_at_once(f"confirmed:{run}", run, now)
    assert len(first) == 1 and second == []  # the second waited for the first to commit, then let it be
    assert OutboxMessage.objects.filter(payload__run=run).count() == 1


@pytest.mark.django_db(transaction=True)
def test_negative_control_without_the_unique_index_a_keyed_message_cannot_be_written(now):
    """The index is the whole guard: without it the insert names a conflict target that is gone, so
    enqueueing fails loudly instead of silently writing the same email twice."""
    from django.db import connection

    constraint = next(c for c in OutboxMessage._meta.constraints if c.name == "outbox_one_message_per_key")
    with connection.schema_editor() as editor:
        editor.remove_constraint(OutboxMessage, constraint)
    try:
        with pytest.raises(Exception, match="no unique or exclusion constraint"), transaction.atomic():
            outbox_enqueue(topic="test.recorded", payload={"run": "x"}, now=now, key="confirmed:x")
        assert not OutboxMessage.objects.exists()
    finally:
        with connection.schema_editor() as editor:
            editor.add_constraint(OutboxMessage, constraint)


@pytest.mark.django_db(transaction=True)
def test_a_handler_with_nothing_to_do_for_a_payload_gets_no_message(now):
    regular, vip = uuid.uuid4().hex, uuid.uuid4().hex  # Redis outlives the run: names of their own
    with transaction.atomic():
        topic = "test.only_for_vips"
        assert outbox_enqueue(topic=topic, payload={"run": regular, "vip": False}, now=now) == []
        [message] = outbox_enqueue(topic=topic, payload={"run": vip, "vip": True}, now=now)
    assert list(OutboxMessage.objects.values_list("payload__run", flat=True)) == [vip]
    outbox_message_deliver(message_id=message.pk, now=now)
    assert (runs_of(regular), runs_of(vip)) == (0, 1)


@pytest.mark.django_db(transaction=True)
def test_a_topic_nobody_listens_to_writes_nothing(now):
    with transaction.atomic():
        assert outbox_enqueue(topic="test.nobody_listens", payload={}, now=now) == []
    assert not OutboxMessage.objects.exists()
