"""Handing work to the Celery worker from a request, without making the customer wait on the broker.

Everything published from a request has a way to happen that does not need the broker: outbox
messages are swept every `OUTBOX_SWEEP_SECONDS`, expired holds are released by the periodic sweep and
every calendar is synced periodically. So a publish that fails is logged and given up, and after a
failure this process stops asking the broker for `BROKER_RETRY_AFTER_SECONDS`: with Redis away only
the first request pays the (short) connection timeout; the rest answer as fast as with Redis up, and
the sweeper delivers their emails, tickets and pushes once Redis is back.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from celery import current_app
from django.conf import settings

from core.redis import redis_client

logger = logging.getLogger(__name__)

_broker_down_until = 0.0  # time.monotonic() before which this process does not try the broker


def task_publish(task_name: str, *, kwargs: dict | None = None, **options: Any) -> bool:
    """Queue the task registered as *task_name* now, or give up at once: True if the broker took it.

    By name, so a service never imports its app's tasks module (which imports the services).
    """
    global _broker_down_until
    if time.monotonic() < _broker_down_until:
        return False
    try:
        current_app.send_task(task_name, kwargs=kwargs or {}, retry=False, **options)
    except Exception as error:  # noqa: BLE001 - any broker trouble: the periodic sweeps do the work instead
        _broker_failed(task_name, error)
        return False
    return True


def task_publish_once(task_name: str, *, marker: str, ttl_seconds: float) -> bool:
    """Queue *task_name* unless one queued under *marker* has not started yet; True if one is queued.

    For a task that takes everything pending when it starts (the outbox relay): the task clears the
    marker first (`task_marker_clear`), so whatever a caller committed before finding the marker set
    is seen by the task already queued, and a rush of commits queues one task, not one each. The
    marker expires after *ttl_seconds* in case that task is lost; the periodic sweeps cover the gap.
    """
    if time.monotonic() < _broker_down_until:
        return False
    try:
        fresh = redis_client().set(marker, b"1", nx=True, px=int(ttl_seconds * 1000))
    except Exception as error:  # noqa: BLE001 - as for the broker: back off, the sweeps do the work
        _broker_failed(task_name, error)
        return False
    if not fresh:
        return True
    if task_publish(task_name):
        return True
    task_marker_clear(marker)  # nothing is queued after all
    return False


def task_marker_clear(marker: str) -> None:
    """Say the task queued under *marker* has started (or was never queued)."""
    with contextlib.suppress(Exception):  # Redis away: the marker expires by itself
        redis_client().delete(marker)


def _broker_failed(task_name: str, error: Exception) -> None:
    global _broker_down_until
    _broker_down_until = time.monotonic() + settings.BROKER_RETRY_AFTER_SECONDS
    logger.warning(
        "Could not queue %s (%s); not trying the broker again for %s s (the periodic sweeps cover it).",
        task_name,
        error,
        settings.BROKER_RETRY_AFTER_SECONDS,
    )
