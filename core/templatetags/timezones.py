"""Show an instant in a named zone, with the zone's abbreviation, whatever zone the request uses."""

import zoneinfo
from datetime import datetime

from django import template
from django.utils import dateformat

register = template.Library()


@register.filter
def in_zone(value: datetime | None, zone: str) -> datetime | None:
    """`{{ booking.starts_at|in_zone:location.time_zone|date:"D j M, H:i T" }}`"""
    if value is None or not zone:
        return value
    return value.astimezone(zoneinfo.ZoneInfo(zone))


@register.filter
def local_time(value: datetime | None, zone: str) -> str:
    """The venue's local date and time with its zone abbreviation, e.g. "Tue 2 Jun 2026, 18:30 BST"."""
    if value is None:
        return ""
    return dateformat.format(value.astimezone(zoneinfo.ZoneInfo(zone)), "D j M Y, H:i T")


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
