"""Show an instant in a named zone, with the zone's abbreviation, whatever zone the request uses."""

import zoneinfo
from datetime import datetime

from django import template

from core.times import venue_time, wall_clock_repeats, zone_abbreviation

register = template.Library()


class _ZonedDatetime(datetime):
    """A datetime the template engine shows in its own zone.

    The `date` and `time` filters convert every aware datetime to the request's current zone first
    (they are registered with `expects_localtime`), which would undo `in_zone`; this flag, the one
    Django's own `|timezone` filter sets, opts out. Unlike that filter we keep `fold`, so a time in the
    hour repeated when the clocks go back keeps its true offset.
    """

    convert_to_local_time = False


@register.filter
def in_zone(value: datetime | None, zone: str) -> datetime | None:
    """`{{ start|in_zone:location.time_zone|date:"Y-m-d" }}`: the venue's date or clock fields. For a
    time people read use `local_time` and its kin: Django's "T" drops the zone in the repeated hour."""
    if value is None or not zone:
        return value
    t = value.astimezone(zoneinfo.ZoneInfo(zone))
    # Field by field: a datetime subclass's combine() or replace() would drop `fold`.
    return _ZonedDatetime(
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond, t.tzinfo, fold=t.fold
    )


@register.filter
def local_time(value: datetime | None, zone: str) -> str:
    """The venue's local date and time with its zone abbreviation, e.g. "Tue 2 Jun 2026, 18:30 BST"
    (and which one it is in the hour the clocks go back: core.times.venue_time)."""
    if value is None:
        return ""
    return venue_time(value, zone, "medium")


@register.filter
def short_local_time(value: datetime | None, zone: str) -> str:
    """ "Sun 31 Oct, 01:00 GMT (the second 01:00, UTC+00:00)": lists, where the year goes without saying."""
    if value is None:
        return ""
    return venue_time(value, zone, "short")


@register.filter
def clock_time(value: datetime | None, zone: str) -> str:
    """ "02:00 GMT": the end of a span whose start is shown in full (named in the repeated hour too)."""
    if value is None:
        return ""
    return venue_time(value, zone, "time")


@register.filter
def zone_abbr(value: datetime, zone: str) -> str:
    """ "BST", "GMT", "UTC+04": the venue zone's name at that moment (fold kept, unlike Django's "T")."""
    return zone_abbreviation(value.astimezone(zoneinfo.ZoneInfo(zone)))


@register.filter
def slot_time(value: datetime, zone: str) -> str:
    """A time on a day's list: "10:30", and "01:00 BST" / "01:00 GMT" where the clock shows it twice."""
    local = value.astimezone(zoneinfo.ZoneInfo(zone))
    return (
        f"{local:%H:%M} {zone_abbreviation(local)}"
        if wall_clock_repeats(local, local.tzinfo)
        else f"{local:%H:%M}"
    )


@register.filter
def minutes(value) -> int:
    """A duration in whole minutes."""
    return int(value.total_seconds() // 60) if value else 0


@register.filter
def lookup(mapping, key):
    """`{{ mapping|lookup:key }}` for dictionaries keyed by ids."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None
