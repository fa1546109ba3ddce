"""What /healthz reports: can we reach PostgreSQL and Redis, and is a Celery worker alive?

The worker proves it is alive by running the `worker_heartbeat` beat task, which records the time in
Redis; a heartbeat older than WORKER_HEARTBEAT_MAX_AGE means no worker has taken tasks recently (or
beat is down), and the outbox would not be draining.
"""

import json
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection

from core.outbox.selectors import outbox_backlog
from core.redis import redis_client

HEARTBEAT_KEY = "booking:worker-heartbeat"


def worker_heartbeat_record(*, now: datetime, hostname: str) -> None:
    redis_client().set(
        HEARTBEAT_KEY,
        json.dumps({"at": now.isoformat(), "hostname": hostname}),
        ex=settings.WORKER_HEARTBEAT_MAX_AGE * 10,
    )


def health_report(*, now: datetime) -> dict[str, Any]:
    report: dict[str, Any] = {"database": _check_database(), "redis": _check_redis()}
    report["worker"] = (
        _check_worker(now=now) if report["redis"]["ok"] else {"ok": False, "error": "redis down"}
    )
    report["ok"] = all(part["ok"] for part in report.values())
    return report


def health_verdicts(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its details: whether the whole, and each part, is ok."""
    return {name: part if name == "ok" else {"ok": part["ok"]} for name, part in report.items()}


def _timed(check) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        extra = check() or {}
    except Exception as exc:  # noqa: BLE001 - a health check reports failures, it does not raise them
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1), **extra}


def _check_database() -> dict[str, Any]:
    def check():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"outbox": outbox_backlog()}

    return _timed(check)


def _check_redis() -> dict[str, Any]:
    return _timed(lambda: {"pong": bool(redis_client().ping())})


def _check_worker(*, now: datetime) -> dict[str, Any]:
    try:
        raw = redis_client().get(HEARTBEAT_KEY)
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    if raw is None:
        return {"ok": False, "error": "no heartbeat yet: is a Celery worker (and beat) running?"}
    beat = json.loads(raw)
    age = (now - datetime.fromisoformat(beat["at"])).total_seconds()
    return {
        "ok": age <= settings.WORKER_HEARTBEAT_MAX_AGE,
        "last_seen": beat["at"],
        "age_seconds": round(age, 1),
        "hostname": beat["hostname"],
    }
