"""The only place inventory rows are locked.

Policy (after pretix's locking.rst and Saleor's lock_objects): lock the scarce rows you are about to
consume, in primary-key order, once per transaction, right before the availability check, under a
short `lock_timeout`. Ordering by primary key means two bookings that need overlapping rows always
queue in the same order and can never deadlock each other; the timeout turns a pile-up into a clear
"busy, try again" instead of a hung request.

Across tables the order is: booking rows first (booking.locks), then these capacity rows.
"""

from collections.abc import Iterable, Mapping, Sequence

from django.db import OperationalError, connection
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


# A session with one counter (a class, an event without zone or ticket-type limits): take the places
# in the UPDATE that locks the row, guarded by the room left. After waiting for another booking, PostgreSQL
# re-checks the guard on the row as that booking left it. Not for several counters: one UPDATE
# would lock them in no fixed order and could take from some and not others, and a locking CTE
# followed by an UPDATE of the same rows writes from the version before the wait (seen on
# PostgreSQL 15: another booking's places were lost and the CHECK refused the row).
_TAKE_SQL = """
UPDATE inventory_capacitycounter SET {field} = {field} + %(n)s
 WHERE id = %(id)s AND session_id = %(session)s AND capacity - held - sold >= %(n)s
   AND set_config('lock_timeout', %(timeout)s, true) IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM inventory_capacitycounter other
                    WHERE other.session_id = %(session)s AND other.id <> %(id)s)
RETURNING id
"""


def session_counters_take(
    *, session_id: int, known: Sequence[CapacityCounter], demand: Mapping[int, int], sold: bool
) -> list[CapacityCounter] | None:
    """Take places in one guarded statement when the session has one counter; None when taken.

    For places without seats, where nothing has to be chosen under the lock: the caller writes
    everything else first, so this is its last statement before COMMIT and every other booking of
    the session waits for one statement and a commit. *demand* is places per counter, worked out
    from *known* (the session's counters read without a lock); nothing is taken unless the session
    still has only that counter and it has room.

    Otherwise (several counters, short of room, or the counters changed) it locks all of the
    session's counters in key order and returns them freshly read, for the caller to release holds
    that ran out and decide "sold out" or take the places after all.

    :raises CapacityBusy: when the counters stay locked by others longer than the lock timeout.
    """
    if len(known) == 1 and set(demand) == {known[0].pk}:
        counter_id, n = known[0].pk, demand[known[0].pk]
        params = {"n": n, "id": counter_id, "session": session_id, "timeout": str(LOCK_TIMEOUT_MS)}
        try:
            with connection.cursor() as cursor:
                cursor.execute(_TAKE_SQL.format(field="sold" if sold else "held"), params)
                taken = cursor.fetchone()
        except OperationalError as error:
            if isinstance(error.__cause__, pg_errors.LockNotAvailable):
                raise CapacityBusy() from error
            raise
        if taken:
            _once_per_transaction("session_counters_take")
            return None
    # a guard that failed after waiting leaves the row locked: it is the session's only one, so
    # locking them all now keeps key order
    return lock_session_counters(session_ids=[session_id]).get(session_id, [])


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
