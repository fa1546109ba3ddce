"""GET /healthz tells a load balancer (and a person) whether the site can take bookings."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from core.health import HEARTBEAT_KEY, worker_heartbeat_record
from core.redis import redis_client
from core.tasks import worker_heartbeat
from tests.conftest import wait_until


@pytest.fixture(autouse=True)
def no_heartbeat_yet():
    redis_client().delete(HEARTBEAT_KEY)
    yield
    redis_client().delete(HEARTBEAT_KEY)


def test_green_when_database_redis_and_a_worker_answer(admin_client, celery_worker):
    worker_heartbeat.delay()  # what beat sends every ten seconds
    wait_until(lambda: redis_client().exists(HEARTBEAT_KEY))

    response = admin_client.get("/healthz")

    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is True
    assert report["database"]["ok"] and report["redis"]["ok"] and report["worker"]["ok"]
    assert report["worker"]["age_seconds"] < 60


@pytest.mark.django_db
def test_unavailable_while_no_worker_has_ever_reported(admin_client):
    response = admin_client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["worker"] == {
        "ok": False,
        "error": "no heartbeat yet: is a Celery worker (and beat) running?",
    }
    assert response.json()["database"]["ok"] is True


@pytest.mark.django_db
def test_unavailable_when_the_last_heartbeat_is_stale(admin_client, settings):
    worker_heartbeat_record(
        now=timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_MAX_AGE + 5), hostname="worker@old"
    )
    response = admin_client.get("/healthz")
    assert response.status_code == 503
    worker = response.json()["worker"]
    assert worker["ok"] is False and worker["hostname"] == "worker@old"


@pytest.mark.django_db
def test_unavailable_when_redis_cannot_be_reached(client, admin_client, settings, tmp_path):
    working = settings.REDIS_URL
    settings.REDIS_URL = f"unix://{tmp_path}/nobody-listens.sock"
    redis_client.cache_clear()
    try:
        anonymous = client.get("/healthz")
        response = admin_client.get("/healthz")
    finally:
        settings.REDIS_URL = working  # before any teardown asks for a client again
        redis_client.cache_clear()
    assert response.status_code == 503
    report = json.loads(response.content)
    assert report["redis"]["ok"] is False and "Error" in report["redis"]["error"]
    assert report["worker"] == {"ok": False, "error": "redis down"}
    assert report["database"]["ok"] is True
    # A stranger learns that it is down, not the socket path or the library's message.
    assert anonymous.status_code == 503
    assert anonymous.json() == {
        "database": {"ok": True},
        "redis": {"ok": False},
        "worker": {"ok": False},
        "ok": False,
    }
    assert str(tmp_path) not in anonymous.content.decode()


@pytest.mark.django_db
def test_the_report_counts_outbox_messages_by_status(admin_client):
    report = admin_client.get("/healthz").json()
    assert report["database"]["outbox"] == {"pending": 0, "delivered": 0, "dead": 0}
