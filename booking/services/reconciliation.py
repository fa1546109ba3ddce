"""Capacity counters checked against the bookings they count, and reset where they drifted. Locks
the counters it checks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from booking.models import (
    HOLDING_STATUSES,
    SOLD_STATUSES,
    BookingItem,
)
from booking.services._shared import ITEM_HOLDER_PREFIX
from core.transactions import service_transaction
from inventory.locks import lock_session_counters
from inventory.models import Allocation, CapacityCounter, Session

logger = logging.getLogger(__name__)


# --- reconciliation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """A counter or allocation that disagrees with the bookings behind it."""

    kind: str  # counter, allocation, seat
    subject: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}: expected {self.expected}, found {self.actual}"


def capacity_reconcile(
    *, now: datetime, fix: bool = False, since: timedelta = timedelta(days=7)
) -> list[Drift]:
    """Compare every counter and allocation of recent and upcoming sessions/appointments with the facts.

    Facts are the items of holding bookings (held) and of confirmed, completed and no-show bookings
    (sold). With *fix*, counters are set to the facts under their locks, one session per transaction.
    """
    drift: list[Drift] = []
    horizon = now - since
    sessions = list(Session.objects.filter(ends_at__gte=horizon).values_list("pk", flat=True))
    facts: dict[tuple, list[int]] = {}
    rows = (
        BookingItem.objects.filter(booking__session_id__in=sessions, resold=False)
        .filter(booking__status__in=[*HOLDING_STATUSES, *SOLD_STATUSES])
        .exclude(resale_of__isnull=False, booking__status__in=HOLDING_STATUSES)
        .values_list("booking__session_id", "zone_id", "ticket_type_id", "booking__status")
    )
    for session_id, zone_id, ticket_type_id, status in rows:
        held, sold = (1, 0) if status in HOLDING_STATUSES else (0, 1)
        keys = {(session_id, None, None)}
        if zone_id:
            keys.add((session_id, zone_id, None))
        if ticket_type_id:
            keys.add((session_id, None, ticket_type_id))
        for key in keys:
            counts = facts.setdefault(key, [0, 0])
            counts[0] += held
            counts[1] += sold
    wrong_sessions: set[int] = set()
    for counter in CapacityCounter.objects.filter(session_id__in=sessions):
        held, sold = facts.get((counter.session_id, counter.zone_id, counter.ticket_type_id), [0, 0])
        if (counter.held, counter.sold) != (held, sold):
            drift.append(
                Drift(
                    "counter",
                    f"#{counter.pk} of session {counter.session_id}",
                    f"held {held}, sold {sold}",
                    f"held {counter.held}, sold {counter.sold}",
                )
            )
            wrong_sessions.add(counter.session_id)

    live = set(
        BookingItem.objects.filter(
            booking__status__in=[*HOLDING_STATUSES, *SOLD_STATUSES], booking__ends_at__gte=horizon
        ).values_list("pk", flat=True)
    )
    active_holders = Allocation.objects.filter(
        is_active=True, ends_at__gte=horizon, holder__startswith=ITEM_HOLDER_PREFIX
    )
    allocated = {
        int(h.removeprefix(ITEM_HOLDER_PREFIX)) for h in active_holders.values_list("holder", flat=True)
    }
    appointment_items = set(
        BookingItem.objects.filter(pk__in=live, booking__session__isnull=True).values_list("pk", flat=True)
    )
    for item_id in sorted(allocated - live):
        drift.append(Drift("allocation", f"booking_item:{item_id}", "released", "still taking time"))
    for item_id in sorted(appointment_items - allocated):
        drift.append(Drift("allocation", f"booking_item:{item_id}", "taking time", "no allocation"))

    if fix:
        for session_id in sorted(wrong_sessions):
            with service_transaction():
                for counter in lock_session_counters(session_ids=[session_id]).get(session_id, []):
                    held, sold = facts.get(
                        (counter.session_id, counter.zone_id, counter.ticket_type_id), [0, 0]
                    )
                    CapacityCounter.objects.filter(pk=counter.pk).update(held=held, sold=sold)
                logger.warning(
                    "Capacity counters of session %s reset to the bookings behind them.", session_id
                )
    return drift
