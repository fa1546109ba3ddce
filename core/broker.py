"""Handing work to the Celery worker from a request, without making the customer wait on the broker.

Everything published from a request has a way to happen that does not need the broker: outbox
messages are swept every `OUTBOX_SWEEP_SECONDS`, expired holds are released by the periodic sweep and
every calendar is synced periodically. So a publish that fails is logged and given up, and after a
failure this process stops asking the broker for `BROKER_RETRY_AFTER_SECONDS`: with Redis away only
the first request pays the (short) connection timeout; the rest answer as fast as with Redis up, and
the sweeper delivers their emails, tickets and pushes once Redis is back.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import current_app
from django.conf import settings

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
        _broker_down_until = time.monotonic() + settings.BROKER_RETRY_AFTER_SECONDS
        logger.warning(
            "Could not queue %s (%s); not trying the broker again for %s s (the periodic sweeps cover it).",
            task_name,
            error,
            settings.BROKER_RETRY_AFTER_SECONDS,
        )
        return False
    return True
