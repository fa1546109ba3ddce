"""What the Microsoft stand-in keeps (users, grants, tokens, calendars, events, subscriptions, delta
states) and the shapes it answers in (Graph and AADSTS errors, Graph's 7-digit timestamps).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from standins._base import (
    UTC,
    Reply,
    Response,
    parse_instant,
    utcnow,
)

GRAPH_SCOPE = "Calendars.ReadWrite"
GRAPH_RESOURCE = "https://graph.microsoft.com/"
WRITABLE = {
    "subject",
    "body",
    "start",
    "end",
    "isAllDay",
    "showAs",
    "location",
    "locations",
    "categories",
    "sensitivity",
    "importance",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "attendees",
    "responseRequested",
    "allowNewTimeProposals",
    "hideAttendees",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "recurrence",
    "singleValueExtendedProperties",
    "multiValueExtendedProperties",
    "transactionId",
}
# Server-set properties a client may echo back; Graph ignores them rather than failing.
READ_ONLY = {
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "iCalUId",
    "webLink",
    "bodyPreview",
    "isCancelled",
    "isOrganizer",
    "type",
    "organizer",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "seriesMasterId",
}
SHOW_AS = {"free", "tentative", "busy", "oof", "workingElsewhere", "unknown"}
CHANGE_TYPES = {"created", "updated", "deleted"}
SUBSCRIPTION_MAX = dt.timedelta(minutes=10080)  # Graph's limit for Outlook events
ACCESS_TOKEN_SECONDS = 3600
DEFAULT_PAGE = 10
RESOURCE_PATTERN = re.compile(
    r"/?(?:me|users/(?P<user>[^/]+))(?:/calendars/(?P<calendar>[^/]+)|(?P<default>/calendar))?/events",
    re.IGNORECASE,
)


def graph_stamp(moment: dt.datetime) -> str:
    """Graph's instant format: UTC with seven fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def b64_json(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    inner = {"date": utcnow().strftime("%Y-%m-%dT%H:%M:%S"), "request-id": str(uuid.uuid4())}
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": inner | {"client-request-id": inner["request-id"]},
        }
    }
    return Reply(Response(status, body, headers or {}))


def aad_error(status: int, error: str, code: int, message: str) -> Reply:
    """An identity-platform error as msal returns it to the caller (a dict, not an exception)."""
    trace, correlation, now = uuid.uuid4(), uuid.uuid4(), utcnow()
    description = (
        f"AADSTS{code}: {message} Trace ID: {trace} Correlation ID: {correlation} "
        f"Timestamp: {now.strftime('%Y-%m-%d %H:%M:%SZ')}"
    )
    body = {
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": str(trace),
        "correlation_id": str(correlation),
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return Reply(Response(status, body))


@dataclass
class User:
    email: str
    oid: str
    name: str


@dataclass
class Grant:
    oid: str
    client_id: str
    scope: str
    revoked: bool = False


@dataclass
class AccessToken:
    oid: str | None  # None: an application token (client_credentials)
    client_id: str
    scope: str
    expires_at: dt.datetime


@dataclass
class Event:
    id: str
    calendar_id: str
    props: dict[str, Any]
    start_at: dt.datetime
    end_at: dt.datetime
    created: dt.datetime
    modified: dt.datetime = field(default_factory=utcnow)
    change_key: str = ""
    seq: int = 0
    deleted: bool = False


@dataclass
class Calendar:
    id: str
    owner: str  # user oid
    name: str
    is_default: bool
    events: dict[str, Event] = field(default_factory=dict)


@dataclass
class Subscription:
    id: str
    resource: str
    owner: str
    calendar_id: str | None  # None: every calendar of the mailbox
    change_types: str
    notification_url: str
    client_state: str | None
    expiration: dt.datetime
    application_id: str


@dataclass
class DeltaState:
    calendar_id: str
    start: dt.datetime
    end: dt.datetime
    seq: int
    visible: frozenset[str]


def event_visible(event: Event, start: dt.datetime, end: dt.datetime) -> bool:
    """In a calendar view of [start, end): not deleted and overlapping it."""
    return not event.deleted and event.start_at < end and event.end_at > start


def control_span(start: dt.datetime | dt.date | str, end: dt.datetime | dt.date | str) -> dict[str, Any]:
    moments = [parse_instant(start), parse_instant(end)]
    if all(isinstance(m, dt.datetime) for m in moments):
        return {
            key: {"dateTime": m.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}
            for key, m in zip(("start", "end"), moments, strict=True)
        }
    return {
        "isAllDay": True,
        **{
            key: {"dateTime": f"{m.isoformat()[:10]}T00:00:00", "timeZone": "UTC"}
            for key, m in zip(("start", "end"), moments, strict=True)
        },
    }
