"""The only place inventory rows are locked.

Policy (after pretix's locking.rst and Saleor's lock_objects): lock the scarce rows you are about to
consume, in primary-key order, once per transaction, right before the availability check, under a
short `lock_timeout`. Ordering by primary key means two bookings that need overlapping rows always
queue in the same order and can never deadlock each other; the timeout turns a pile-up into a clear
"busy, try again" instead of a hung request.

Across tables the order is: booking rows first (booking.locks), then these capacity rows.
"""

from collections.abc import Iterable

from django.db import OperationalError
from psycopg import errors as pg_errors

from core.errors import ApplicationError
from core.transactions import current_use_case
from inventory.models import CapacityCounter, ResourceUnit

LOCK_TIMEOUT_MS = 3000


class CapacityBusy(ApplicationError):
    """Too many people are booking the same places right now; the caller may simply try again."""

    default_code = "busy"

    def __init__(self, message: str = "Lots of people are booking this right now. Please try again.") -> None:
        super().__init__(message)


class LockedTwice(RuntimeError):
    """Capacity was locked twice in one transaction: the second lock could deadlock (a programming error)."""


def _once_per_transaction(name: str) -> None:
    owner = current_use_case()
    if getattr(owner, "_capacity_locked", False):
        raise LockedTwice(
            f"{name}: capacity was already locked in this transaction; lock everything at once."
        )
    owner._capacity_locked = True


def _with_timeout(queryset) -> list:
    """Run a locking query under this transaction's short lock timeout.

    The timeout is set by `set_config(..., is_local => true)` inside the query itself rather than by a
    separate `SET LOCAL`: PostgreSQL evaluates the condition on each candidate row before locking it,
    so the timeout is in force before the first wait, and the hot path saves a round trip.
    """
    timed = queryset.extra(
        where=["set_config('lock_timeout', %s, true) IS NOT NULL"], params=[str(LOCK_TIMEOUT_MS)]
    )
    try:
        return list(timed)
    except OperationalError as error:
        if isinstance(error.__cause__, pg_errors.LockNotAvailable):
            raise CapacityBusy() from error
        raise


def lock_session_counters(*, session_ids: Iterable[int]) -> dict[int, list[CapacityCounter]]:
    """Lock every counter of the given sessions; returns them per session, in primary-key order.

    All of a session's counters are taken together (total, zones, ticket types): there are only a
    few, every booking of the session needs the total anyway, and it lets an expired hold on any of
    them be released lazily under the same lock.
    """
    _once_per_transaction("lock_session_counters")
    rows = _with_timeout(
        CapacityCounter.objects.select_for_update(of=("self",))
        .filter(session_id__in=sorted(set(session_ids)))
        .order_by("pk")
    )
    by_session: dict[int, list[CapacityCounter]] = {}
    for row in rows:
        by_session.setdefault(row.session_id, []).append(row)
    return by_session


def lock_resource_units(*, resource_ids: Iterable[int]) -> list[ResourceUnit]:
    """Lock every active unit of the given resources, in primary-key order.

    Appointments serialise per resource here, so "any available stylist" is chosen and the per-day
    limit counted while nobody else can take the same people; the exclusion constraint on
    allocations stays the backstop.
    """
    _once_per_transaction("lock_resource_units")
    return _with_timeout(
        ResourceUnit.objects.select_for_update(of=("self",))
        .filter(resource_id__in=sorted(set(resource_ids)), is_active=True)
        .order_by("pk")
    )


def lock_resource_pool(*, resource_id: int) -> list[ResourceUnit]:
    """Lock every unit of one resource, active or not, to resize its pool; returned by unit number.

    Bookings of the resource lock its active units (`lock_resource_units`), so a pool never shrinks
    under a booking being made. Not once-per-transaction: loading a business saves many resources
    in one transaction, each pool locked on its own, and nothing else is locked around it.
    """
    units = _with_timeout(
        ResourceUnit.objects.select_for_update(of=("self",)).filter(resource_id=resource_id).order_by("pk")
    )
    return sorted(units, key=lambda unit: unit.number)
