"""Every IANA zone's changes of clock in 2026–2030, and a venue open all day to book around them."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, time, timedelta
from functools import cache

from inventory.models import Offering
from tests.booking.night_studio import NOW
from tests.inventory import factories as make


@cache
def clock_changes(zone_name: str) -> list[datetime]:
    """The instants at which the zone's UTC offset changes in 2026–2030 (all fall on a quarter hour)."""
    zone = zoneinfo.ZoneInfo(zone_name)
    changes = []
    day = datetime(2026, 1, 1, tzinfo=UTC)
    offset = day.astimezone(zone).utcoffset()
    while day.year < 2031:
        following = day + timedelta(days=1)
        if following.astimezone(zone).utcoffset() != offset:
            change = next(
                moment
                for moment in (day + timedelta(minutes=15 * q) for q in range(1, 97))
                if moment.astimezone(zone).utcoffset() != offset
            )
            changes.append(change)
            offset = following.astimezone(zone).utcoffset()
        day = following
    return changes


ZONES_THAT_CHANGE = sorted(z for z in zoneinfo.available_timezones() if clock_changes(z))


def repeated_quarters(zone: zoneinfo.ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The quarter-hour instants in [start, end) whose wall-clock time the zone shows twice, before
    23:45 (a visit then would run past the end of the venue's day)."""
    quarters = (start + timedelta(minutes=15 * q) for q in range(int((end - start) / timedelta(minutes=15))))
    return [
        moment
        for moment in quarters
        if (local := moment.astimezone(zone)).replace(fold=1 - local.fold).utcoffset() != local.utcoffset()
        and local.time() < time(23, 45)
    ]


def open_all_day(zone_name: str) -> Offering:
    studio = make.location(name=f"Studio in {zone_name}", time_zone=zone_name)
    room = make.resource(
        at=studio, name="Room", now=NOW, hours={d: [(time(0), time(23, 59))] for d in range(7)}
    )
    return make.appointment(
        at=studio, needs=[[room]], name="Quarter hour", minutes=15, interval=15, price="0.00"
    )


@cache
def zones_that_change_alike() -> list[str]:
    """One zone for each distinct history of changes in 2026–2030: zones whose offsets change at the
    same instants to the same values are, for every line of our code, the same zone."""
    seen: dict[tuple, str] = {}
    for name in ZONES_THAT_CHANGE:
        zone = zoneinfo.ZoneInfo(name)
        history = tuple((change, change.astimezone(zone).utcoffset()) for change in clock_changes(name))
        seen.setdefault(history, name)
    return sorted(seen.values())


def first_changes_each_way(zone_name: str) -> list[datetime]:
    """The zone's first fall-back and first spring-forward in 2026–2030 (either may be missing)."""
    zone = zoneinfo.ZoneInfo(zone_name)
    found: dict[bool, datetime] = {}
    for change in clock_changes(zone_name):
        back = (
            change.astimezone(zone).utcoffset() < (change - timedelta(seconds=1)).astimezone(zone).utcoffset()
        )
        found.setdefault(back, change)
    return sorted(found.values())


def touched_stretch(zone_name: str, change: datetime) -> tuple[datetime, datetime]:
    """The instants whose wall-clock time the change repeats or skips, and a quarter hour either side."""
    zone = zoneinfo.ZoneInfo(zone_name)
    before, after = (
        (change - timedelta(seconds=1)).astimezone(zone).utcoffset(),
        change.astimezone(zone).utcoffset(),
    )
    margin = abs(after - before) + timedelta(minutes=15)
    return change - margin, change + margin
