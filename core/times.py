"""How a booking's time leaves the system: one way to write it for people, one for machines.

We store instants in UTC. Where the clocks go back once a year the venue's wall clock shows one hour
twice ("01:00" on Sunday 31 October 2027 in London is 00:00 UTC and again 01:00 UTC), and RFC 5545
(3.3.5) reads a local time with a TZID that occurs twice as its *first* occurrence, so no local time
can name the second one: every calendar client would put the booking an hour early.

For machines (ICS invites, CalDAV events, Graph and Google pushes) `machine_moment` gives UTC, always.
A UTC time names exactly one instant, needs no VTIMEZONE that the receiver might read differently,
and calendar clients show it in their own zone. "Local where unambiguous, UTC in the repeated hour"
was tried and is not enough: read back by vobject (the parser Radicale itself uses), a local time
with a VTIMEZONE is an hour off at the first minutes after a spring-forward gap in many zones
(03:00 CEST in Africa/Ceuta on 29 March 2026, 01:00 EEST in Africa/Cairo on 24 April 2026), times no
rule of ambiguity would flag. tests/booking/test_repeated_hour.py checks every zone, 2026–2030.

For people (emails, pages, staff screens, exports) `venue_time` writes the venue's wall clock with the
zone's abbreviation, always ("01:00 GMT"), and where that wall-clock time occurs twice it also says
which of the two it is and its UTC offset ("01:00 GMT (the second 01:00, UTC+00:00)"), because an
abbreviation alone is not always known to the reader. (Django's "T" format leaves the abbreviation
out exactly there, in the repeated hour, so it is not used for this.)
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo

from django.utils import dateformat

STYLES = {
    "long": "l j F Y, H:i",  # Sunday 31 October 2027, 01:00 GMT — emails
    "medium": "D j M Y, H:i",  # Sun 31 Oct 2027, 01:00 GMT — pages
    "short": "D j M, H:i",  # Sun 31 Oct, 01:00 GMT — lists
    "time": "H:i",  # 01:00 GMT — the end of a span, a time on a day's list
}


def zone_of(zone: str | tzinfo) -> tzinfo:
    return zoneinfo.ZoneInfo(zone) if isinstance(zone, str) else zone


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("A time leaving the system must be aware (stored UTC); got a naive datetime.")
    return moment


def wall_clock_repeats(moment: datetime, zone: str | tzinfo) -> bool:
    """Whether the zone's clocks show this moment's wall-clock time twice (the hour the clocks go back)."""
    local = _aware(moment).astimezone(zone_of(zone))
    return local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()


def machine_moment(moment: datetime) -> datetime:
    """The instant as an aware UTC datetime, for whatever serialises it for another program."""
    return _aware(moment).astimezone(UTC)


def utc_offset(local: datetime) -> str:
    """ "UTC+01:00", "UTC-03:30": the offset the moment has in its own zone."""
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def zone_abbreviation(local: datetime) -> str:
    """The zone's name for this moment ("BST", "CET"); zones that have none get their offset ("UTC+03")."""
    name = local.tzname() or ""
    if not name or name[0] in "+-":
        return f"UTC{name}" if name else utc_offset(local)
    return name


def venue_time(moment: datetime, zone: str | tzinfo, style: str = "medium") -> str:
    """A moment as people at the venue read it, naming one instant even in the repeated hour."""
    local = _aware(moment).astimezone(zone_of(zone))
    text = f"{dateformat.format(local, STYLES[style])} {zone_abbreviation(local)}"
    if wall_clock_repeats(local, local.tzinfo):
        which = "second" if local.fold else "first"
        text += f" (the {which} {local:%H:%M}, {utc_offset(local)})"
    return text
