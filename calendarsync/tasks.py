"""Celery tasks of calendarsync: each loads by id and makes one service call.

A provider that is down or limiting us raises ProviderUnavailable; the task retries with exponential
back-off (or the provider's Retry-After), and the connection shows as failing in admin meanwhile.
"""

import logging

from celery import shared_task
from django.utils import timezone

from calendarsync.models import CalendarConnection
from calendarsync.providers.base import ProviderUnavailable
from calendarsync.services import calendar_backfill, calendar_sync, connection_watch_renew
from core.broker import task_publish

log = logging.getLogger(__name__)
MAX_RETRIES = 8


@shared_task(name="calendarsync.tasks.calendar_sync", bind=True, max_retries=MAX_RETRIES)
def calendar_sync_task(self, connection_id: int, **kwargs) -> int:
    """Read the calendar's changes into busy time; after a full sync, push the upcoming bookings."""
    try:
        result = calendar_sync(connection_id=connection_id, now=timezone.now())
        if result.full:
            calendar_backfill(connection_id=connection_id, now=timezone.now())
    except ProviderUnavailable as error:
        delay = error.retry_after or min(15 * 2**self.request.retries, 1800)
        raise self.retry(exc=error, countdown=delay) from error
    return result.busy_written


@shared_task(name="calendarsync.tasks.calendar_sync_all")
def calendar_sync_all(**kwargs) -> int:
    """The safety net under push: every live calendar is synced periodically, and channels renewed."""
    ids = list(
        CalendarConnection.objects.filter(status__in=["connected", "failing"]).values_list("pk", flat=True)
    )
    for pk in ids:
        task_publish("calendarsync.tasks.calendar_sync", kwargs={"connection_id": pk})
    return len(ids)


@shared_task(name="calendarsync.tasks.calendar_watch_renew")
def calendar_watch_renew(connection_id: int, **kwargs) -> bool:
    return connection_watch_renew(connection_id=connection_id, now=timezone.now())
