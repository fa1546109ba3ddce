"""Build inventory through the same services staff use, with believable defaults."""

import itertools
from datetime import datetime, time, timedelta
from decimal import Decimal

from inventory.models import (
    Allocation,
    Blackout,
    BusyBlock,
    Location,
    Offering,
    Resource,
    ResourceRequirement,
    TicketType,
    Zone,
)
from inventory.services import resource_save, session_create, working_hours_replace

_n = itertools.count(1)


def location(*, time_zone: str = "Europe/London", name: str | None = None) -> Location:
    n = next(_n)
    return Location.objects.create(
        name=name or f"Studio {n}",
        slug=f"studio-{n}",
        address_line1=f"{n} High Street",
        city="Bristol",
        country="GB",
        time_zone=time_zone,
    )


def resource(
    *,
    at: Location,
    name: str | None = None,
    kind: str = Resource.Kind.STAFF,
    count: int = 1,
    hours: dict[int, list[tuple[time, time]]] | None = None,
    now: datetime,
) -> Resource:
    """A resource working *hours* (weekday -> periods); every day 09:00–17:00 by default."""
    made = resource_save(
        resource=Resource(location=at, name=name or f"Resource {next(_n)}", kind=kind, count=count), now=now
    )
    hours = hours if hours is not None else {d: [(time(9), time(17))] for d in range(7)}
    working_hours_replace(
        resource=made, periods=[(d, s, e) for d, periods in hours.items() for s, e in periods]
    )
    return made


def appointment(
    *,
    at: Location,
    needs: list[list[Resource]],
    minutes: int = 60,
    interval: int = 30,
    before: int = 0,
    after: int = 0,
    price: str = "50.00",
    **fields,
) -> Offering:
    n = next(_n)
    offering = Offering.objects.create(
        kind=Offering.Kind.APPOINTMENT,
        name=fields.pop("name", f"Appointment {n}"),
        slug=f"appointment-{n}",
        location=at,
        price=Decimal(price),
        currency="GBP",
        duration=timedelta(minutes=minutes),
        slot_interval=timedelta(minutes=interval),
        buffer_before=timedelta(minutes=before),
        buffer_after=timedelta(minutes=after),
        **fields,
    )
    for i, candidates in enumerate(needs):
        requirement = ResourceRequirement.objects.create(offering=offering, label=f"Need {i + 1}")
        requirement.candidates.set(candidates)
    return offering


def class_offering(*, at: Location, price: str = "12.00", **fields) -> Offering:
    n = next(_n)
    return Offering.objects.create(
        kind=Offering.Kind.CLASS,
        name=fields.pop("name", f"Class {n}"),
        slug=f"class-{n}",
        location=at,
        price=Decimal(price),
        currency="GBP",
        **fields,
    )


def event(
    *, at: Location, zones: dict[str, int], tickets: dict[str, tuple[str, list[str]]], **fields
) -> Offering:
    """An event with zones {name: capacity} and ticket types {name: (price, [zone names])}."""
    n = next(_n)
    offering = Offering.objects.create(
        kind=Offering.Kind.EVENT,
        name=fields.pop("name", f"Event {n}"),
        slug=f"event-{n}",
        location=at,
        currency="GBP",
        **fields,
    )
    made = {
        name: Zone.objects.create(offering=offering, name=name, capacity=cap) for name, cap in zones.items()
    }
    for name, (price, zone_names) in tickets.items():
        tt = TicketType.objects.create(offering=offering, name=name, price=Decimal(price))
        tt.zones.set([made[z] for z in zone_names])
    return offering


def session(
    *,
    offering: Offering,
    starts_at: datetime,
    minutes: int = 60,
    capacity: int | None = None,
    resources=(),
    now: datetime,
):
    return session_create(
        offering=offering,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=minutes),
        capacity=capacity,
        resources=list(resources),
        now=now,
    )


def allocation(
    *,
    on: Resource,
    starts_at: datetime,
    minutes: int = 60,
    before: int = 0,
    after: int = 0,
    offering: Offering | None = None,
    unit_number: int = 1,
    now: datetime,
) -> Allocation:
    """Time already taken on a resource (as a confirmed booking would take it)."""
    ends_at = starts_at + timedelta(minutes=minutes)
    return Allocation.objects.create(
        unit=on.units.get(number=unit_number),
        resource=on,
        offering=offering,
        span=(starts_at - timedelta(minutes=before), ends_at + timedelta(minutes=after)),
        starts_at=starts_at,
        ends_at=ends_at,
        holder=f"test:{next(_n)}",
        created_at=now,
    )


def busy(*, on: Resource, starts_at: datetime, minutes: int = 60, now: datetime) -> BusyBlock:
    return BusyBlock.objects.create(
        resource=on,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=minutes),
        source="manual",
        external_id=f"ext-{next(_n)}",
        updated_at=now,
    )


def blackout(
    *,
    starts_at: datetime,
    ends_at: datetime,
    location: Location | None = None,
    resource: Resource | None = None,
) -> Blackout:
    return Blackout.objects.create(
        location=location, resource=resource, starts_at=starts_at, ends_at=ends_at, reason="Closed"
    )
