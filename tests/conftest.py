"""Fixtures every test may use: a real Celery worker, a Redis we can take away, a frozen `now`.

Tests run against real PostgreSQL and Redis (DATABASE_URL / REDIS_URL, provided by `make test`).
"""

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from celery.contrib.testing.worker import start_worker

from config.celery import app as celery_app
from config.devstack import LocalRedis
from config.env import celery_broker_url

# Per-app fixtures, shared by every test package (a payments test books like a booking test does).
pytest_plugins = ["tests.clock", "tests.booking.fixtures", "tests.payments.fixtures"]


def wait_until(predicate: Callable[[], object], *, timeout: float = 15.0, interval: float = 0.05) -> object:
    """Poll until *predicate* returns something truthy; fail the test after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def _reset_broker_connections() -> None:
    # Celery caches broker connections per app, and kombu keeps its pools in a global registry;
    # after switching brokers both must be rebuilt.
    from kombu import pools

    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextlib.contextmanager
def celery_broker(redis_url: str) -> Iterator[None]:
    """Publish to and consume from the Redis at *redis_url* inside the block."""
    previous = celery_app.conf.broker_url
    celery_app.conf.broker_url = celery_broker_url(redis_url)
    _reset_broker_connections()
    try:
        yield
    finally:
        celery_app.conf.broker_url = previous
        _reset_broker_connections()


@contextlib.contextmanager
def running_worker() -> Iterator[object]:
    """A real Celery worker consuming the configured broker in a thread of this test process."""
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"
    ) as worker:
        yield worker


@pytest.fixture
def celery_worker(transactional_db):
    """A worker on the test broker; queued tasks left by earlier tests are purged first."""
    celery_app.control.purge()
    with running_worker() as worker:
        yield worker


@pytest.fixture
def private_redis(tmp_path_factory) -> Iterator[LocalRedis]:
    """A Redis server of this test's own, which the test may stop and start again."""
    server = LocalRedis(tmp_path_factory.mktemp("redis"), persist=False)
    yield server
    server.stop()


@pytest.fixture
def now() -> datetime:
    """The instant the domain code is told it is (tests pass it explicitly, never read the clock)."""
    return datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class Inbox:
    """What a real SMTP server on 127.0.0.1 received; it can refuse a recipient once (a crash mid-send)."""

    def __init__(self) -> None:
        self.messages: list = []
        self.refuse_once: set[str] = set()
        self.greetings = 0  # EHLOs: one per connection a client opened

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.greetings += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse_once:
            self.refuse_once.discard(address)
            return "451 Mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        from email import policy
        from email.parser import BytesParser

        self.messages.append(BytesParser(policy=policy.default).parsebytes(envelope.original_content))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list:
        return [m for m in self.messages if address in (m["to"] or "")]

    def clear(self) -> None:
        self.messages.clear()
        self.refuse_once.clear()
        self.greetings = 0


@pytest.fixture(scope="session")
def smtp_server():
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:  # aiosmtpd wants a port number up front
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture(autouse=True)
def inbox(smtp_server, settings) -> Inbox:
    """Every test sends real SMTP to this process's own server, and starts with an empty inbox."""
    server, port = smtp_server
    # Django's test set-up swaps in an in-memory backend; these tests want the real SMTP client.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    server.clear()
    return server


@pytest.fixture(autouse=True)
def broker_worth_trying() -> None:
    """A publish that failed in an earlier test (a stopped Redis) does not make this one skip the
    broker, and a relay an earlier test queued (and nobody ran) does not stand in for this one's."""
    import core.broker
    from core.outbox.services import RELAY_MARKER

    core.broker._broker_down_until = 0.0
    core.broker.task_marker_clear(RELAY_MARKER)
