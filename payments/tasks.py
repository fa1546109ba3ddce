"""Thin Celery tasks of payments."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from payments.services import balance_reminders_due, payments_reconcile

logger = logging.getLogger(__name__)


@shared_task(name="payments.tasks.reconcile_recent")
def reconcile_recent(**kwargs) -> int:
    """Catch up with Stripe for the last two days (a safety net behind the webhooks)."""
    if not settings.STRIPE_ENABLED:
        return 0
    now = timezone.now()
    drift = payments_reconcile(now=now, since=now - timedelta(days=2))
    for item in drift:
        logger.warning("Payment reconciled: %s", item)
    return len(drift)


@shared_task(name="payments.tasks.balance_reminders")
def balance_reminders(**kwargs) -> int:
    """Email a pay-the-balance link to deposit bookings whose balance falls due soon."""
    return balance_reminders_due(now=timezone.now())
