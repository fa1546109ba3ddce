"""What the Google stand-in keeps (grants, access tokens, calendars, watch channels) and the shapes it
answers in (Google's JSON errors, OAuth errors, RFC 3339 times).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from standins._base import (
    UTC,
    BadRequest,
    Reply,
    Response,
    parse_instant,
)

CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"
READ_SCOPES = {
    CALENDAR_SCOPE,
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar.events.readonly",
}
WRITE_SCOPES = {CALENDAR_SCOPE, "https://www.googleapis.com/auth/calendar.events"}
EVENT_ID = re.compile(r"[a-v0-9]{5,1024}")
# Set by Google, never by the client: ignored when a client sends them back.
READ_ONLY = {
    "kind",
    "etag",
    "id",
    "htmlLink",
    "created",
    "updated",
    "creator",
    "organizer",
    "iCalUID",
    "sequence",
}
NOT_WITH_SYNC_TOKEN = [
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
]
ACCESS_TOKEN_SECONDS = 3600
CHANNEL_MAX = dt.timedelta(days=7)


def google_stamp(moment: dt.datetime) -> str:
    """Google's timestamp format: UTC with milliseconds."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def rfc3339(moment: dt.datetime, zone: ZoneInfo) -> str:
    text = moment.astimezone(zone).isoformat(timespec="seconds")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def zone_named(name: str, label: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadRequest(f"Invalid time zone definition for {label} time.", "invalid") from exc


def aware_instant(text: str, label: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"Invalid value for: {label}", "invalid") from exc
    if moment.tzinfo is None:
        raise BadRequest(f"Invalid value for: {label} (an RFC3339 timestamp with offset)", "invalid")
    return moment


def unsigned_jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def google_error(status: int, message: str, reason: str, *, domain: str = "global", **detail: str) -> Reply:
    """A Reply in the shape googleapiclient parses into HttpError(status, reason)."""
    item = {"domain": domain, "reason": reason, "message": message, **detail}
    return Reply(Response(status, {"error": {"errors": [item], "code": status, "message": message}}))


def oauth_error(status: int, error: str, description: str) -> Reply:
    return Reply(Response(status, {"error": error, "error_description": description}))


@dataclass
class Grant:
    """What one refresh token stands for."""

    email: str
    client_id: str
    scope: str
    revoked: bool = False


@dataclass
class AccessToken:
    email: str
    scope: str
    expires_at: dt.datetime
    grant: Grant | None


@dataclass
class Calendar:
    id: str
    owner: str
    summary: str
    time_zone: str
    resource_id: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)  # event id -> change number of its last write


@dataclass
class Channel:
    id: str
    resource_id: str
    calendar_id: str
    address: str
    token: str | None
    expiration: dt.datetime
    messages: int = 0


def control_time(value: dt.datetime | dt.date | str) -> dict[str, str]:
    moment = parse_instant(value)
    if isinstance(moment, dt.datetime):
        return {"dateTime": moment.isoformat()}
    return {"date": moment.isoformat()}


def event_merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Patch semantics: nested objects merge, null clears, anything else replaces."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif key in ("start", "end") and isinstance(value, dict) and isinstance(merged.get(key), dict):
            # A time is either a date or a dateTime; sending one replaces the other.
            kept = {k: v for k, v in merged[key].items() if k not in ("date", "dateTime")}
            merged[key] = kept | value
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = event_merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def listed_event(event: dict[str, Any]) -> dict[str, Any]:
    """How an event appears in a list: Google guarantees little more than the id for cancelled ones."""
    if event["status"] != "cancelled":
        return event
    return {key: event[key] for key in ("kind", "etag", "id", "status", "updated")}
