"""Google Calendar v3 calendars, events and free/busy: client-chosen ids that stay taken, deletion as
`cancelled`, incremental sync by `syncToken` (410 `fullSyncRequired` when stale), paging.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from typing import Any
from zoneinfo import ZoneInfo

from standins._base import (
    BadRequest,
    Reply,
    Request,
    Response,
    utcnow,
)
from standins.google_calendar.records import (
    EVENT_ID,
    NOT_WITH_SYNC_TOKEN,
    READ_ONLY,
    Calendar,
    aware_instant,
    event_merged,
    google_error,
    google_stamp,
    listed_event,
    rfc3339,
    zone_named,
)


class GoogleEvents:
    """The /calendar/v3 calendar, event and freeBusy endpoints of `GoogleCalendarStandIn`."""

    def _calendar(self, email_address: str, calendar_id: str) -> Calendar:
        calendar = self._calendars.get(email_address if calendar_id == "primary" else calendar_id)
        if calendar is None or calendar.owner != email_address:
            raise google_error(404, "Not Found", "notFound")
        return calendar

    def _event(self, calendar: Calendar, event_id: str) -> dict[str, Any]:
        event = calendar.events.get(event_id)
        if event is None:
            raise google_error(404, "Not Found", "notFound")
        return event

    def _calendar_list(self, request: Request) -> Response:
        email_address = self._caller(request)
        items = [
            {
                "kind": "calendar#calendarListEntry",
                "id": calendar.id,
                "summary": calendar.summary,
                "timeZone": calendar.time_zone,
                "accessRole": "owner",
                **({"primary": True} if calendar.id == email_address else {}),
            }
            for calendar in self._calendars.values()
            if calendar.owner == email_address
        ]
        return Response(200, {"kind": "calendar#calendarList", "items": items})

    def _calendar_get(self, request: Request, calendar_id: str) -> Response:
        calendar = self._calendar(self._caller(request), calendar_id)
        return Response(
            200,
            {
                "kind": "calendar#calendar",
                "id": calendar.id,
                "summary": calendar.summary,
                "timeZone": calendar.time_zone,
            },
        )

    def _normalize_time(self, value: Any, label: str, calendar: Calendar) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise BadRequest(f"Missing {label} time.", "required")
        value = {k: v for k, v in value.items() if v is not None}
        zone_name = value.get("timeZone")
        zone = zone_named(zone_name or calendar.time_zone, label)
        if "date" in value and "dateTime" not in value:
            try:
                dt.date.fromisoformat(value["date"])
            except (TypeError, ValueError) as exc:
                raise BadRequest(f"Invalid {label} time.", "invalid") from exc
            return value
        if "dateTime" in value and "date" not in value:
            try:
                moment = dt.datetime.fromisoformat(value["dateTime"])
            except (TypeError, ValueError) as exc:
                raise BadRequest(f"Invalid {label} time.", "invalid") from exc
            if moment.tzinfo is None:
                if not zone_name:
                    raise BadRequest(f"Missing time zone definition for {label} time.", "required")
                moment = moment.replace(tzinfo=zone)
            # Google answers in the event's (else the calendar's) zone, whatever offset was sent.
            return value | {"dateTime": rfc3339(moment, zone)}
        raise BadRequest(f"Missing {label} time." if not value else f"Invalid {label} time.", "required")

    def _instant(self, value: dict[str, Any], calendar: Calendar) -> dt.datetime:
        if "date" in value:
            # All-day events span local midnights of the calendar's zone.
            day = dt.date.fromisoformat(value["date"])
            return dt.datetime.combine(day, dt.time(), ZoneInfo(calendar.time_zone))
        return dt.datetime.fromisoformat(value["dateTime"])

    def _compose(
        self, calendar: Calendar, event_id: str, body: dict[str, Any], previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Validate a client's event and complete it with Google's read-only fields."""
        fields = {k: v for k, v in body.items() if k not in READ_ONLY and v is not None}
        fields["start"] = self._normalize_time(fields.get("start"), "start", calendar)
        fields["end"] = self._normalize_time(fields.get("end"), "end", calendar)
        if ("date" in fields["start"]) != ("date" in fields["end"]):
            raise BadRequest("Start and end times must either both be date or both be dateTime.", "invalid")
        if self._instant(fields["end"], calendar) <= self._instant(fields["start"], calendar):
            raise BadRequest("The specified time range is empty.", "timeRangeEmpty")
        if fields.get("transparency", "opaque") not in ("opaque", "transparent"):
            raise BadRequest("Invalid value for: transparency", "invalid")
        if fields.get("status", "confirmed") not in ("confirmed", "tentative", "cancelled"):
            raise BadRequest("Invalid value for: status", "invalid")
        sequence = 0
        if previous:
            moved = (previous["start"], previous["end"]) != (fields["start"], fields["end"])
            sequence = previous["sequence"] + moved
        return {
            "kind": "calendar#event",
            "id": event_id,
            "status": "confirmed",
            "htmlLink": f"{self.url}/calendar/event?eid={event_id}",
            "created": previous["created"] if previous else google_stamp(utcnow()),
            "creator": {"email": calendar.owner, "self": True},
            "organizer": {"email": calendar.id, "self": True},
            "iCalUID": previous["iCalUID"] if previous else f"{event_id}@google.com",
            "sequence": sequence,
            "reminders": {"useDefault": True},
            "eventType": "default",
            **fields,
        }

    def _commit(self, calendar: Calendar, event: dict[str, Any]) -> dict[str, Any]:
        """Store a write: new etag and `updated`, a change number for sync, a push to watchers."""
        self._seq += 1
        event = event | {"etag": f'"{3_400_000_000_000_000 + self._seq}"', "updated": google_stamp(utcnow())}
        calendar.events[event["id"]] = event
        calendar.changed[event["id"]] = self._seq
        for channel in list(self._channels.values()):
            if channel.calendar_id == calendar.id:
                self._push(channel, "exists")
        return event

    def _check_etag(self, request: Request, event: dict[str, Any]) -> None:
        expected = request.headers.get("If-Match")
        if expected and expected != "*" and expected != event["etag"]:
            raise google_error(412, "Precondition Failed", "conditionNotMet", location="If-Match")

    def _events_insert(self, request: Request, calendar_id: str) -> Response:
        calendar = self._calendar(self._caller(request, write=True), calendar_id)
        body = request.json()
        event_id = body.get("id") or base64.b32hexencode(secrets.token_bytes(16)).decode().lower().rstrip("=")
        if not EVENT_ID.fullmatch(event_id):
            raise BadRequest("Invalid resource id value.", "invalid")
        if event_id in calendar.events:  # deleted events keep their id, as at Google
            raise google_error(409, "The requested identifier already exists.", "duplicate")
        return Response(200, self._commit(calendar, self._compose(calendar, event_id, body)))

    def _events_get(self, request: Request, calendar_id: str, event_id: str) -> Response:
        calendar = self._calendar(self._caller(request), calendar_id)
        return Response(200, self._event(calendar, event_id))

    def _events_patch(self, request: Request, calendar_id: str, event_id: str) -> Response:
        calendar = self._calendar(self._caller(request, write=True), calendar_id)
        previous = self._event(calendar, event_id)
        self._check_etag(request, previous)
        merged = event_merged(previous, request.json())
        return Response(200, self._commit(calendar, self._compose(calendar, event_id, merged, previous)))

    def _events_update(self, request: Request, calendar_id: str, event_id: str) -> Response:
        calendar = self._calendar(self._caller(request, write=True), calendar_id)
        previous = self._event(calendar, event_id)
        self._check_etag(request, previous)
        body = request.json()
        return Response(200, self._commit(calendar, self._compose(calendar, event_id, body, previous)))

    def _events_delete(self, request: Request, calendar_id: str, event_id: str) -> Response:
        calendar = self._calendar(self._caller(request, write=True), calendar_id)
        event = self._event(calendar, event_id)
        if event["status"] == "cancelled":
            raise google_error(410, "Resource has been deleted", "deleted")
        self._check_etag(request, event)
        self._commit(calendar, event | {"status": "cancelled"})
        return Response(204)

    def _events_list(self, request: Request, calendar_id: str) -> Response:
        calendar = self._calendar(self._caller(request), calendar_id)
        query = request.query
        try:
            max_results = min(int(query.get("maxResults", 250)), 2500)
        except ValueError as exc:
            raise BadRequest("Invalid value for: maxResults", "invalid") from exc
        if max_results < 1:
            raise BadRequest("Invalid value for: maxResults", "invalid")
        if page_token := query.get("pageToken"):
            page = self._pages.pop(page_token, None)
            if page is None or page[0] != calendar.id:
                raise BadRequest("Invalid page token value.", "invalid")
            _, items, sync_token = page
        else:
            items = self._select(calendar, request)
            sync_token = secrets.token_urlsafe(24)
            self._sync_tokens[sync_token] = (calendar.id, self._seq)
        body: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"p{self._seq}"',
            "summary": calendar.summary,
            "updated": google_stamp(utcnow()),
            "timeZone": calendar.time_zone,
            "accessRole": "owner",
            "defaultReminders": [],
            "items": [listed_event(event) for event in items[:max_results]],
        }
        if len(items) > max_results:
            # Pages are cut from a snapshot so paging stays consistent while the calendar changes;
            # later changes reach the client through the sync token handed out on the last page.
            next_page = secrets.token_urlsafe(24)
            self._pages[next_page] = (calendar.id, items[max_results:], sync_token)
            body["nextPageToken"] = next_page
        else:
            body["nextSyncToken"] = sync_token
        return Response(200, body)

    def _select(self, calendar: Calendar, request: Request) -> list[dict[str, Any]]:
        query = request.query
        if sync_token := query.get("syncToken"):
            for name in NOT_WITH_SYNC_TOKEN:
                if name in query:
                    raise BadRequest(
                        f"The parameter {name} cannot be used together with syncToken.", "invalid"
                    )
            known = self._sync_tokens.get(sync_token)
            if known is None or known[0] != calendar.id:
                raise google_error(
                    410, "Sync token is no longer valid, a full sync is required.", "fullSyncRequired"
                )
            return [calendar.events[i] for i, seq in calendar.changed.items() if seq > known[1]]
        events = list(calendar.events.values())
        if query.get("showDeleted", "false") != "true":
            events = [e for e in events if e["status"] != "cancelled"]
        if "timeMin" in query:
            time_min = aware_instant(query["timeMin"], "timeMin")
            events = [e for e in events if self._instant(e["end"], calendar) > time_min]
        if "timeMax" in query:
            time_max = aware_instant(query["timeMax"], "timeMax")
            events = [e for e in events if self._instant(e["start"], calendar) < time_max]
        for _, condition in (p for p in request.query_list if p[0] == "privateExtendedProperty"):
            key, _, value = condition.partition("=")
            events = [
                e for e in events if e.get("extendedProperties", {}).get("private", {}).get(key) == value
            ]
        order = query.get("orderBy")
        if order == "startTime":
            if query.get("singleEvents") != "true":
                raise BadRequest(
                    "The requested ordering is not available for the particular query.", "invalid"
                )
            events.sort(key=lambda e: self._instant(e["start"], calendar))
        elif order == "updated":
            events.sort(key=lambda e: e["updated"])
        return events

    def _freebusy(self, request: Request) -> Response:
        email_address = self._caller(request)
        body = request.json()
        for name in ("timeMin", "timeMax"):
            if not body.get(name):
                raise BadRequest(f"Missing {name} parameter.", "required")
        time_min, time_max = (
            aware_instant(body["timeMin"], "timeMin"),
            aware_instant(body["timeMax"], "timeMax"),
        )
        if time_max <= time_min:
            raise BadRequest("The specified time range is empty.", "timeRangeEmpty")
        calendars: dict[str, Any] = {}
        for item in body.get("items", []):
            try:
                calendar = self._calendar(email_address, item.get("id", ""))
            except Reply:
                calendars[item.get("id", "")] = {
                    "errors": [{"domain": "global", "reason": "notFound"}],
                    "busy": [],
                }
                continue
            spans = sorted(
                (
                    max(self._instant(e["start"], calendar), time_min),
                    min(self._instant(e["end"], calendar), time_max),
                )
                for e in calendar.events.values()
                if e["status"] != "cancelled" and e.get("transparency", "opaque") == "opaque"
            )
            busy: list[list[dt.datetime]] = []
            for start, end in spans:
                if start >= end:
                    continue
                if busy and start <= busy[-1][1]:  # Google reports overlapping events as one busy span
                    busy[-1][1] = max(busy[-1][1], end)
                else:
                    busy.append([start, end])
            calendars[item["id"]] = {
                "busy": [
                    {"start": rfc3339(s, ZoneInfo("UTC")), "end": rfc3339(e, ZoneInfo("UTC"))}
                    for s, e in busy
                ]
            }
        return Response(
            200,
            {
                "kind": "calendar#freeBusy",
                "timeMin": google_stamp(time_min),
                "timeMax": google_stamp(time_max),
                "calendars": calendars,
            },
        )
