"""Thin Celery tasks of booking: load by id, make one service call."""

import logging

from celery import shared_task
from django.utils import timezone

from booking.services import booking_expire, capacity_reconcile, hold_release_expired, reminders_enqueue_due

logger = logging.getLogger(__name__)


@shared_task(name="booking.tasks.booking_expire_hold")
def booking_expire_hold(*, booking_id: int, **kwargs) -> bool:
    """Release one hold when it runs out (scheduled with the hold's expiry as ETA)."""
    return booking_expire(booking_id=booking_id, now=timezone.now())


@shared_task(name="booking.tasks.holds_sweep")
def holds_sweep(**kwargs) -> int:
    """Release every hold that ran out and was missed (a worker or Redis was away at its expiry)."""
    return hold_release_expired(now=timezone.now())


@shared_task(name="booking.tasks.capacity_reconcile")
def capacity_reconcile_task(**kwargs) -> int:
    """Prove the counters equal the facts; log any drift loudly for staff (fixing is a staff decision)."""
    drift = capacity_reconcile(now=timezone.now(), fix=False)
    for item in drift:
        logger.error("Capacity drift: %s", item)
    return len(drift)


@shared_task(name="booking.tasks.reminders")
def reminders(**kwargs) -> int:
    """Queue the reminder emails whose moment has come (from the database, not long countdowns)."""
    return reminders_enqueue_due(now=timezone.now())
