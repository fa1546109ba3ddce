"""Taking and giving back places and time, inside the caller's transaction, after `inventory.locks`.

These functions never lock on their own and never open a transaction: the booking service locks the
rows (once, in key order), then calls them to check and write. Every write is also guarded by the
database: the counters' CHECK, the allocations' exclusion constraint, the seats' unique index.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F

from core.transactions import require_atomic
from inventory.availability import appointment_slots, assign_resources, to_ts
from inventory.errors import SeatTaken, SlotTaken, SoldOut
from inventory.models import Allocation, CapacityCounter, Offering, Resource, SeatAllocation, Session
from inventory.selectors import appointment_inputs


@dataclass(frozen=True)
class Place:
    """One place in a session: in a zone, of a ticket type, on a seat (each optional)."""

    zone_id: int | None = None
    ticket_type_id: int | None = None
    seat_id: int | None = None


def _counters_for(place: Place, counters: Sequence[CapacityCounter]) -> list[CapacityCounter]:
    return [
        c
        for c in counters
        if (c.zone_id is None and c.ticket_type_id is None)
        or (c.zone_id is not None and c.zone_id == place.zone_id)
        or (c.ticket_type_id is not None and c.ticket_type_id == place.ticket_type_id)
    ]


def _demand(places: Iterable[Place], counters: Sequence[CapacityCounter]) -> Counter:
    demand: Counter = Counter()
    for place in places:
        for counter in _counters_for(place, counters):
            demand[counter.pk] += 1
    return demand


def session_places_demand(*, counters: Sequence[CapacityCounter], places: Iterable[Place]) -> dict[int, int]:
    """How many places the booking takes from each counter (by its key): the total, zones, ticket types."""
    return dict(_demand(places, counters))


def _describe(counter: CapacityCounter, remaining: int, wanted: int) -> str:
    if counter.zone_id:
        scope = f"in {counter.zone.name}"
    elif counter.ticket_type_id:
        scope = f"of {counter.ticket_type.name} tickets"
    else:
        scope = ""
    if remaining <= 0:
        return f"Sold out{' ' + scope if scope else ''}."
    places = "place" if remaining == 1 else "places"
    return f"Only {remaining} {places} left{' ' + scope if scope else ''}; you asked for {wanted}."


def session_places_check(*, counters: Sequence[CapacityCounter], places: Sequence[Place]) -> None:
    """Raise `SoldOut` unless every counter the places touch has room for them."""
    by_pk = {c.pk: c for c in counters}
    for pk, wanted in _demand(places, counters).items():
        counter = by_pk[pk]
        remaining = counter.capacity - counter.held - counter.sold
        if wanted > remaining:
            raise SoldOut(_describe(counter, remaining, wanted), extra={"remaining": max(0, remaining)})


def session_places_take(
    *,
    session: Session,
    counters: Sequence[CapacityCounter],
    places: Sequence[tuple[Place, str]],
    sold: bool,
    now: datetime,
) -> None:
    """Take places (as held, or straight to sold) and their seats; *places* pairs each with its holder.

    :raises SoldOut: a counter has no room (checked here against the locked rows).
    :raises SeatTaken: a seat is already someone else's.
    """
    require_atomic("session_places_take")
    session_places_check(counters=counters, places=[p for p, _ in places])
    field = "sold" if sold else "held"
    for pk, n in _demand([p for p, _ in places], counters).items():
        CapacityCounter.objects.filter(pk=pk).update(**{field: F(field) + n})
    seats = [
        SeatAllocation(session=session, seat_id=p.seat_id, holder=holder, created_at=now)
        for p, holder in places
        if p.seat_id
    ]
    if seats:
        try:
            with transaction.atomic():
                SeatAllocation.objects.bulk_create(seats)
        except IntegrityError:
            raise SeatTaken("One of the seats you chose was just taken. Please pick another.") from None


def session_places_confirm(*, counters: Sequence[CapacityCounter], places: Sequence[Place]) -> None:
    """Turn held places into sold ones (the same transaction that confirms the booking)."""
    require_atomic("session_places_confirm")
    for pk, n in _demand(places, counters).items():
        CapacityCounter.objects.filter(pk=pk).update(held=F("held") - n, sold=F("sold") + n)


def session_places_release(
    *, counters: Sequence[CapacityCounter], places: Sequence[Place], holders: Iterable[str], was_sold: bool
) -> None:
    """Give places back (expired hold, cancellation, reschedule) and free their seats."""
    require_atomic("session_places_release")
    field = "sold" if was_sold else "held"
    for pk, n in _demand(places, counters).items():
        CapacityCounter.objects.filter(pk=pk).update(**{field: F(field) - n})
    SeatAllocation.objects.filter(holder__in=list(holders), is_active=True).update(is_active=False)


def seats_best_available(
    *, session: Session, zone_id: int, count: int, exclude: set[int] = frozenset()
) -> list[int]:
    """The first free seats of a zone, front rows first (for "best available")."""
    taken = set(
        SeatAllocation.objects.filter(session=session, seat__zone_id=zone_id, is_active=True).values_list(
            "seat_id", flat=True
        )
    )
    free = (
        session.offering.zones.get(pk=zone_id)
        .seats.exclude(pk__in=taken | set(exclude))
        .order_by("row", "number")
        .values_list("pk", flat=True)
    )
    return list(free[:count])


# --- appointments -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TakenTime:
    allocations: list[Allocation]
    resources: dict[int, list[Resource]]  # requirement -> resources assigned


def appointment_candidate_resource_ids(*, offering: Offering) -> list[int]:
    return sorted(
        set(
            Resource.objects.filter(
                pk__in=offering.requirements.values_list("candidates", flat=True), is_active=True
            ).values_list("pk", flat=True)
        )
    )


def appointment_time_take(
    *, offering: Offering, starts_at: datetime, holder: str, preferred: dict[int, int] | None, now: datetime
) -> TakenTime:
    """Allocate the resources an appointment at *starts_at* needs, choosing any free ones not preferred.

    Call after `lock_resource_units` for the offering's candidates, so the choice is made on data
    nobody else can change; the exclusion constraint is the backstop.

    :raises SlotTaken: the time (or the preferred person) is no longer free.
    """
    require_atomic("appointment_time_take")
    window_end = starts_at + timedelta(seconds=1)
    rules, calendars = appointment_inputs(offerings=[offering], start=starts_at, end=window_end)
    slots = appointment_slots(
        rules=rules[offering.pk], calendars=calendars, start=starts_at, end=window_end, now=now
    )
    if not slots or slots[0].starts_at != starts_at:
        raise SlotTaken("This time was just taken. Please choose another.")
    assignment = assign_resources(slots[0].options, preferred)
    if assignment is None:
        raise SlotTaken("The person you chose is no longer free at this time. Choose another time or anyone.")

    ends_at = starts_at + offering.duration
    span = (starts_at - offering.buffer_before, ends_at + offering.buffer_after)
    lo, hi = to_ts(span[0]), to_ts(span[1])
    allocations = []
    chosen: dict[int, list[Resource]] = {}
    resources = Resource.objects.in_bulk([r for ids in assignment.values() for r in ids])
    for requirement_id, resource_ids in assignment.items():
        chosen[requirement_id] = [resources[r] for r in resource_ids]
        for resource_id in resource_ids:
            calendar = calendars[resource_id]
            unit = next(
                u
                for u in calendar.units
                if not any(
                    s < hi and lo < e for s, e in [*calendar.unit_blocked.get(u, ()), *calendar.blocked]
                )
            )
            allocations.append(
                Allocation(
                    unit_id=unit,
                    resource_id=resource_id,
                    offering=offering,
                    span=span,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    holder=holder,
                    created_at=now,
                )
            )
    try:
        with transaction.atomic():
            Allocation.objects.bulk_create(allocations)
    except IntegrityError:
        raise SlotTaken("This time was just taken. Please choose another.") from None
    return TakenTime(allocations=allocations, resources=chosen)


def appointment_time_release(*, holders: Iterable[str]) -> int:
    """Free the time held by these holders (expired hold, cancellation, the old slot of a reschedule)."""
    require_atomic("appointment_time_release")
    return Allocation.objects.filter(holder__in=list(holders), is_active=True).update(is_active=False)


def appointment_holders_overlapping(
    *, resource_ids: Sequence[int], starts_at: datetime, ends_at: datetime
) -> list[str]:
    """Holders of active allocations on these resources around a time (to release expired holds lazily)."""
    return list(
        Allocation.objects.filter(
            resource_id__in=resource_ids, is_active=True, span__overlap=(starts_at, ends_at)
        ).values_list("holder", flat=True)
    )
