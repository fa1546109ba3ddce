"""Writes of inventory: the things whose rules span several rows.

Plain fields are edited in admin with model validation; what needs more (a session's counters and
resource allocations, a pool's units, a seat map) goes through these services, which admin calls too.
Input errors raise `django.core.exceptions.ValidationError` with a message for the person who typed
it; the database constraints stay the final word.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from datetime import datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F

from core.transactions import require_atomic
from inventory.availability import wall_bound
from inventory.locks import lock_resource_pool
from inventory.models import (
    Allocation,
    BusyBlock,
    CapacityCounter,
    Offering,
    Resource,
    ResourceUnit,
    Seat,
    Session,
    SessionSeries,
    Weekday,
    WorkingHours,
    Zone,
)

# --- schedules -----------------------------------------------------------------------------------


def periods_overlap_message(periods: Iterable[tuple[object, time, time]], *, describe) -> str | None:
    """A message naming the first pair of overlapping periods that share a key (weekday or date)."""
    by_key: dict[object, list[tuple[time, time]]] = {}
    for key, start, end in periods:
        if start is None or end is None:
            continue
        by_key.setdefault(key, []).append((start, end))
    for key, spans in by_key.items():
        spans.sort()
        for (s1, e1), (s2, e2) in pairwise(spans):
            if s2 < e1:
                return (
                    f"{describe(key)}: {s1:%H:%M}–{e1:%H:%M} overlaps {s2:%H:%M}–{e2:%H:%M}. "
                    "Merge them into one period or fix the times."
                )
    return None


def working_hours_replace(
    *, resource: Resource, periods: Sequence[tuple[int, time, time]]
) -> list[WorkingHours]:
    """Set a resource's weekly hours to *periods* (weekday, start, end), all or nothing.

    :raises ValidationError: for a period that ends before it starts or periods that overlap.
    """
    for weekday, start, end in periods:
        if end <= start:
            raise ValidationError(
                f"{Weekday(weekday).label}: working hours must end after they start "
                f"({start:%H:%M} – {end:%H:%M})."
            )
    message = periods_overlap_message(periods, describe=lambda day: Weekday(day).label)
    if message:
        raise ValidationError(message)
    with transaction.atomic():
        WorkingHours.objects.filter(resource=resource).delete()
        return WorkingHours.objects.bulk_create(
            WorkingHours(resource=resource, weekday=d, start_time=s, end_time=e) for d, s, e in periods
        )


def resource_units_sync(*, resource: Resource, now: datetime) -> None:
    """Give a resource exactly `count` active units, keeping units that hold future bookings.

    :raises ValidationError: when shrinking the pool would strand booked time.
    """
    require_atomic("resource_units_sync")
    units = lock_resource_pool(resource_id=resource.pk)
    active = [u for u in units if u.is_active]
    if len(active) < resource.count:
        missing = resource.count - len(active)
        for unit in [u for u in units if not u.is_active][:missing]:
            unit.is_active = True
            unit.save(update_fields=["is_active"])
            missing -= 1
        next_number = max((u.number for u in units), default=0) + 1
        ResourceUnit.objects.bulk_create(
            ResourceUnit(resource=resource, number=next_number + n) for n in range(missing)
        )
    elif len(active) > resource.count:
        surplus = active[resource.count :]
        busy = Allocation.objects.filter(unit__in=surplus, is_active=True, ends_at__gt=now).count()
        if busy:
            raise ValidationError(
                f"{resource.name} cannot shrink to {resource.count}: {busy} upcoming booking(s) use the "
                "units that would go. Move or cancel them first."
            )
        ResourceUnit.objects.filter(pk__in=[u.pk for u in surplus]).update(is_active=False)


def resource_save(*, resource: Resource, now: datetime) -> Resource:
    """Create or update a resource and its units in one transaction.

    :raises ValidationError: for invalid fields or a pool that cannot shrink.
    """
    resource.full_clean()
    with transaction.atomic():
        resource.save()
        resource_units_sync(resource=resource, now=now)
    return resource


# --- busy time from outside (calendar sync writes here) -----------------------------------------


def busy_block_upsert(
    *,
    resource: Resource,
    source: str,
    external_id: str,
    starts_at: datetime,
    ends_at: datetime,
    summary: str = "",
    now: datetime,
) -> BusyBlock:
    """Record (or move) an external event's busy time on a resource."""
    if ends_at <= starts_at:
        raise ValidationError("Busy time must end after it starts.")
    block, _ = BusyBlock.objects.update_or_create(
        resource=resource,
        source=source,
        external_id=external_id,
        defaults={"starts_at": starts_at, "ends_at": ends_at, "summary": summary[:200], "updated_at": now},
    )
    return block


# --- sessions -----------------------------------------------------------------------------------


def _session_counters(*, session: Session, capacity: int) -> list[CapacityCounter]:
    offering = session.offering
    counters = [CapacityCounter(session=session, capacity=capacity)]
    counters += [CapacityCounter(session=session, zone=z, capacity=z.capacity) for z in offering.zones.all()]
    counters += [
        CapacityCounter(session=session, ticket_type=t, capacity=t.limit_per_session)
        for t in offering.ticket_types.all()
        if t.limit_per_session is not None
    ]
    return counters


def _allocate_session_resources(*, session: Session, resources: Sequence[Resource], now: datetime) -> None:
    """Block the instructor/room for the session's time so appointments cannot take it."""
    for resource in resources:
        unit = resource.units.filter(is_active=True).order_by("number").first()
        if unit is None:
            raise ValidationError(f"{resource.name} has no bookable unit.")
        try:
            with transaction.atomic():
                Allocation.objects.create(
                    unit=unit,
                    resource=resource,
                    offering=session.offering,
                    span=(session.starts_at, session.ends_at),
                    starts_at=session.starts_at,
                    ends_at=session.ends_at,
                    holder=f"session:{session.pk}",
                    created_at=now,
                )
        except IntegrityError:
            local = session.starts_at.astimezone(ZoneInfo(resource.location.time_zone))
            raise ValidationError(
                f"{resource.name} is already booked at {local:%a %d %b %H:%M %Z}; "
                "choose another time or resource."
            ) from None


def session_create(
    *,
    offering: Offering,
    starts_at: datetime,
    ends_at: datetime,
    capacity: int | None = None,
    resources: Sequence[Resource] = (),
    series: SessionSeries | None = None,
    now: datetime,
) -> Session:
    """Schedule a class or event session with its capacity counters and resource time.

    A class needs *capacity*; an event's capacity defaults to the sum of its zones.

    :raises ValidationError: for wrong input or a resource already booked at that time.
    """
    if offering.kind == Offering.Kind.APPOINTMENT:
        raise ValidationError("Appointments have no sessions: customers pick a slot from the working hours.")
    if ends_at <= starts_at:
        raise ValidationError("The session must end after it starts.")
    zone_total = sum(z.capacity for z in offering.zones.all())
    if capacity is None:
        capacity = zone_total
    if capacity is None or capacity <= 0:
        raise ValidationError("A session needs a capacity of at least one place.")
    with transaction.atomic():
        session = Session(offering=offering, starts_at=starts_at, ends_at=ends_at, series=series)
        session.full_clean(exclude=["series"])
        session.save()
        CapacityCounter.objects.bulk_create(_session_counters(session=session, capacity=capacity))
        if resources:
            session.resources.set(resources)
            _allocate_session_resources(session=session, resources=resources, now=now)
    return session


def session_capacity_change(*, counter: CapacityCounter, capacity: int) -> CapacityCounter:
    """Change how many places a session (or one of its zones/ticket types) has.

    :raises ValidationError: below zero, or below the places already held and sold.
    """
    if capacity < 0:
        raise ValidationError("Capacity cannot be negative.")
    with transaction.atomic():
        updated = CapacityCounter.objects.filter(pk=counter.pk, held__lte=capacity - F("sold")).update(
            capacity=capacity
        )
        if not updated:
            counter.refresh_from_db()
            raise ValidationError(
                f"Capacity cannot be lower than the {counter.held + counter.sold} places "
                "already held or sold."
            )
    counter.refresh_from_db()
    return counter


def series_generate_sessions(*, series: SessionSeries, now: datetime) -> list[Session]:
    """Create the sessions of a weekly series that do not exist yet (safe to run again).

    Dates are walked in the location's zone, so a 18:30 class stays at 18:30 local across DST.
    """
    offering = series.offering
    zone = ZoneInfo(offering.location.time_zone)
    existing = set(series.sessions.values_list("starts_at", flat=True))
    resources = list(series.resources.all())
    created = []
    day = series.starts_on + timedelta(days=(series.weekday - series.starts_on.weekday()) % 7)
    while day <= series.ends_on:
        starts_at = datetime.fromtimestamp(wall_bound(day, series.start_time, zone, is_end=False), zone)
        if starts_at not in existing and starts_at > now:
            created.append(
                session_create(
                    offering=offering,
                    starts_at=starts_at,
                    ends_at=starts_at + series.duration,
                    capacity=series.capacity,
                    resources=resources,
                    series=series,
                    now=now,
                )
            )
        day += timedelta(days=7)
    return created


# --- seat maps ----------------------------------------------------------------------------------


def row_labels(count: int) -> list[str]:
    """A, B, … Z, AA, AB … as theatres label rows."""
    labels = []
    letters = string.ascii_uppercase
    for n in range(count):
        label = ""
        n += 1
        while n:
            n, remainder = divmod(n - 1, 26)
            label = letters[remainder] + label
        labels.append(label)
    return labels


def zone_seat_map_generate(*, zone: Zone, rows: int, seats_per_row: int, now: datetime) -> list[Seat]:
    """Lay out a seated zone as rows × seats (A1 … A20, B1 …) and set its capacity to match.

    :raises ValidationError: for a map that is empty or too large, or a zone whose seats were sold.
    """
    if rows < 1 or seats_per_row < 1:
        raise ValidationError("A seat map needs at least one row and one seat per row.")
    if rows > 200 or seats_per_row > 500:
        raise ValidationError("That is larger than any venue: at most 200 rows of 500 seats.")
    with transaction.atomic():
        if zone.seats.filter(allocations__is_active=True).exists():
            raise ValidationError(f"Seats in {zone.name} are already sold; the map cannot be replaced.")
        zone.seats.all().delete()
        seats = Seat.objects.bulk_create(
            Seat(zone=zone, row=row, number=n, label=f"{row}{n}")
            for row in row_labels(rows)
            for n in range(1, seats_per_row + 1)
        )
        zone.is_seated = True
        zone.capacity = len(seats)
        zone.save(update_fields=["is_seated", "capacity"])
        # Upcoming sessions follow the new map; the CHECK refuses it where more places are taken.
        CapacityCounter.objects.filter(zone=zone, session__starts_at__gt=now).update(capacity=len(seats))
    return seats
