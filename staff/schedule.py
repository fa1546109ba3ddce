"""The staff day schedule of one location: its resources down the side, the day's hours across.

`day_schedule` reads everything the page shows in a fixed handful of queries (however many bookings
the day holds) and lays it out as plain data: each block carries its position as percentages of the
shown stretch of real time, so the template only places boxes.

Time, on purpose:

* The day is a local date in the location's zone. Its hours are wall-clock hours found with the
  availability engine's zone handling (`wall_instants`, `wall_bound`), so a spring-forward day has
  23 of them (the skipped hour is absent) and an autumn day 25 (the repeated hour appears twice, each
  labelled with its zone abbreviation).
* Positions are proportional to real elapsed time, so an hour is as wide on a DST day as on any
  other, and a booking sits where its instants are.
* The shown stretch runs from the earliest working hour (or booking) to the latest of the location's
  resources that day, rounded out to whole local hours; with neither, 07:00-22:00. `whole_day` shows
  local midnight to midnight.

What is drawn per resource: allocations of its units (appointments through their booking items, class
and event sessions through the session), busy blocks (calendar sync or manual), blackouts of the
resource or the whole location, and the time outside its working hours. A pool resource (count > 1)
gets one lane per unit, because allocations are made per unit.

This module reads; `staff.schedule_layout` turns what it read into positioned blocks.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Case, IntegerField, Q, Value, When
from django.db.models.functions import Lower, Upper

from booking.models import BookingItem
from inventory.availability import (
    ResourceCalendar,
    from_ts,
    wall_bound,
)
from inventory.models import (
    Allocation,
    Blackout,
    BusyBlock,
    CapacityCounter,
    DateOverride,
    Location,
    Resource,
    ResourceUnit,
    Session,
    WorkingHours,
)
from staff.schedule_layout import (
    DaySchedule,
    hour_marks,
    now_position,
    resource_row,
    shown_stretch,
    shown_stretch_label,
    zone_abbreviations,
)

ITEM_HOLDER_PREFIX = "booking_item:"  # BookingItem.holder
SESSION_HOLDER_PREFIX = "session:"  # how inventory.services allocates a session's resources


KIND_ORDER = Case(
    When(kind=Resource.Kind.STAFF, then=Value(0)),
    When(kind=Resource.Kind.ROOM, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)


# --- the one read -------------------------------------------------------------------------------


def schedule_locations() -> list[Location]:
    """The locations a schedule can be shown for, in the order of the location select."""
    return list(Location.objects.order_by("name", "pk"))


def day_schedule(
    *, location: Location, day: date, now: datetime | None = None, whole_day: bool = False
) -> DaySchedule:
    """Lay out one local day of *location*: its active resources and everything taking their time.

    Ten queries, whatever the number of resources, bookings and sessions.
    """
    zone = ZoneInfo(location.time_zone)
    day_start = wall_bound(day, time(0), zone, is_end=False)
    day_end = wall_bound(day + timedelta(days=1), time(0), zone, is_end=False)
    day_window = (from_ts(day_start), from_ts(day_end))

    resources = list(
        Resource.objects.filter(location=location, is_active=True)
        .annotate(kind_order=KIND_ORDER)
        .order_by("kind_order", "name", "pk")
        .values("pk", "name", "kind", "count")
    )
    ids = [r["pk"] for r in resources]
    calendars = _calendars(ids, day, zone)
    allocations = list(
        Allocation.objects.filter(resource_id__in=ids, is_active=True, span__overlap=day_window)
        .annotate(lower=Lower("span"), upper=Upper("span"))
        .order_by("lower", "pk")
        .values("pk", "unit_id", "resource_id", "holder", "starts_at", "ends_at", "lower", "upper")
    )
    units: dict[int, list[tuple[int, int, bool]]] = defaultdict(list)  # resource -> (unit, number, active)
    for unit_id, resource_id, number, active in (
        ResourceUnit.objects.filter(resource_id__in=ids)
        .order_by("resource_id", "number")
        .values_list("pk", "resource_id", "number", "is_active")
    ):
        units[resource_id].append((unit_id, number, active))
    blackouts = list(
        Blackout.objects.filter(
            Q(location=location) | Q(resource_id__in=ids),
            starts_at__lt=day_window[1],
            ends_at__gt=day_window[0],
        )
        .order_by("starts_at", "pk")
        .values("pk", "resource_id", "starts_at", "ends_at", "reason")
    )
    busy = list(
        BusyBlock.objects.filter(resource_id__in=ids, starts_at__lt=day_window[1], ends_at__gt=day_window[0])
        .order_by("starts_at", "pk")
        .values("pk", "resource_id", "starts_at", "ends_at", "source", "summary")
    )
    bookings = _bookings_by_item(allocations)
    sessions = _sessions(allocations)

    # `working_spans` covers a day either side (for buffers); keep what falls on this day.
    working = {
        rid: [
            (max(s, day_start), min(e, day_end))
            for s, e in cal.working_spans(day_start, day_end)
            if s < day_end and e > day_start
        ]
        for rid, cal in calendars.items()
    }
    if whole_day:
        view = (day_start, day_end)
    else:
        view = shown_stretch(day, zone, (day_start, day_end), working, allocations)
    names = {r["pk"]: r["name"] for r in resources}
    by_resource: dict[int, list[dict]] = defaultdict(list)
    for allocation in allocations:
        by_resource[allocation["resource_id"]].append(allocation)
    session_resources: dict[str, list[str]] = defaultdict(list)  # a class's instructor and room
    for allocation in allocations:
        if allocation["holder"].startswith(SESSION_HOLDER_PREFIX):
            session_resources[allocation["holder"]].append(names[allocation["resource_id"]])
    changing = len(zone_abbreviations(*view, zone)) > 1
    return DaySchedule(
        location=location,
        day=day,
        zone_name=location.time_zone,
        abbreviations=zone_abbreviations(day_start, day_end, zone),
        day_hours=(day_end - day_start) / 3600,
        starts_at=from_ts(view[0]).astimezone(zone),
        ends_at=from_ts(view[1]).astimezone(zone),
        stretch_label=shown_stretch_label(view, day_end, zone, changing=changing),
        hours=hour_marks(day, zone, view, changing=changing),
        rows=[
            resource_row(
                resource,
                units=units[resource["pk"]],
                allocations=by_resource[resource["pk"]],
                working=working[resource["pk"]],
                calendar=calendars[resource["pk"]],
                blackouts=[b for b in blackouts if b["resource_id"] in (None, resource["pk"])],
                busy=[b for b in busy if b["resource_id"] == resource["pk"]],
                bookings=bookings,
                sessions=sessions,
                session_resources=session_resources,
                view=view,
                day=day,
                zone=zone,
                changing=changing,
            )
            for resource in resources
        ],
        now_left=now_position(now, view),
        whole_day=whole_day,
    )


# --- loading ------------------------------------------------------------------------------------


def _calendars(ids: list[int], day: date, zone: ZoneInfo) -> dict[int, ResourceCalendar]:
    """Working hours and date overrides as the engine's calendars (two queries)."""
    calendars = {
        rid: ResourceCalendar(resource_id=rid, zone=zone, units=[], weekly=defaultdict(list), overrides={})
        for rid in ids
    }
    for resource_id, weekday, start, end in WorkingHours.objects.filter(resource_id__in=ids).values_list(
        "resource_id", "weekday", "start_time", "end_time"
    ):
        calendars[resource_id].weekly[weekday].append((start, end))
    # The days either side too: `working_spans` expands a day either side of the one asked for.
    for resource_id, on, closed, start, end in DateOverride.objects.filter(
        resource_id__in=ids, date__range=(day - timedelta(days=1), day + timedelta(days=1))
    ).values_list("resource_id", "date", "is_closed", "start_time", "end_time"):
        periods = calendars[resource_id].overrides.setdefault(on, [])
        if not closed:
            periods.append((start, end))
    for calendar in calendars.values():
        for periods in calendar.overrides.values():
            periods.sort()
    return calendars


def _holder_ids(allocations: list[dict], prefix: str) -> set[int]:
    """The ids in holders such as "booking_item:42" (other holders, e.g. from tests or imports, skipped)."""
    ids = (a["holder"].removeprefix(prefix) for a in allocations if a["holder"].startswith(prefix))
    return {int(i) for i in ids if i.isdigit()}


def _bookings_by_item(allocations: list[dict]) -> dict[str, dict]:
    """The booking behind each "booking_item:<id>" holder (one query)."""
    item_ids = _holder_ids(allocations, ITEM_HOLDER_PREFIX)
    if not item_ids:
        return {}
    rows = BookingItem.objects.filter(pk__in=item_ids).values(
        "pk",
        "booking_id",
        "booking__reference",
        "booking__status",
        "booking__needs_attention",
        "booking__attention_reason",
        "booking__customer__name",
        "booking__offering__name",
    )
    return {f"{ITEM_HOLDER_PREFIX}{row['pk']}": row for row in rows}


def _sessions(allocations: list[dict]) -> dict[str, dict]:
    """The session behind each "session:<id>" holder, with its places (two queries)."""
    session_ids = _holder_ids(allocations, SESSION_HOLDER_PREFIX)
    if not session_ids:
        return {}
    sessions = {
        row["pk"]: row
        for row in Session.objects.filter(pk__in=session_ids).values(
            "pk", "status", "offering__name", "offering__kind"
        )
    }
    for row in CapacityCounter.objects.filter(
        session_id__in=session_ids, zone__isnull=True, ticket_type__isnull=True
    ).values("session_id", "capacity", "held", "sold"):
        sessions[row["session_id"]].update(capacity=row["capacity"], held=row["held"], sold=row["sold"])
    return {f"{SESSION_HOLDER_PREFIX}{pk}": row for pk, row in sessions.items()}
