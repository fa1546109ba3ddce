"""Microsoft Graph calendars and events: the mailbox a token may read or write, events in the caller's
`Prefer: outlook.timezone`, `transactionId` replays, paging, calendarView and its delta links.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import urllib.parse
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from standins._base import (
    UTC,
    BadRequest,
    Request,
    Response,
    utcnow,
)
from standins.microsoft.records import (
    DEFAULT_PAGE,
    GRAPH_RESOURCE,
    READ_ONLY,
    SHOW_AS,
    WRITABLE,
    AccessToken,
    Calendar,
    DeltaState,
    Event,
    Subscription,
    User,
    event_visible,
    graph_error,
    graph_stamp,
)


class GraphCalendars:
    """The /v1.0/me/... calendar and event endpoints of `MicrosoftStandIn`."""

    def _token_for(self, request: Request) -> AccessToken:
        token = request.bearer_token()
        challenge = {"WWW-Authenticate": 'Bearer realm="", authorization_uri="", client_id=""'}
        if not token:
            raise graph_error(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
        access = self._access.get(token)
        if access is None:
            raise graph_error(
                401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.", challenge
            )
        if access.expires_at <= utcnow():
            raise graph_error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                challenge,
            )
        return access

    def _mailbox(self, request: Request, who: str, *, write: bool = False) -> User:
        """The mailbox `me` or `users/{id|upn}` names, if the caller's token may act on it."""
        access = self._token_for(request)
        if who == "me":
            if access.oid is None:
                raise graph_error(
                    400, "BadRequest", "/me request is only valid with delegated authentication flow."
                )
            user = self._users[access.oid]
        else:
            key = who.removeprefix("users/").lower()
            user = next((u for u in self._users.values() if key in (u.oid, u.email.lower())), None)
            if user is None:
                raise graph_error(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
        if access.oid is not None:
            granted = {s.removeprefix(GRAPH_RESOURCE) for s in access.scope.split()}
            needed = {"Calendars.ReadWrite"} if write else {"Calendars.Read", "Calendars.ReadWrite"}
            if access.oid != user.oid or not granted & needed:
                raise graph_error(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
        return user

    def _calendar(self, user: User, calendar_id: str | None) -> Calendar:
        if calendar_id is None:
            return next(c for c in self._calendars.values() if c.owner == user.oid and c.is_default)
        calendar = self._calendars.get(calendar_id)
        if calendar is None or calendar.owner != user.oid:
            raise graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return calendar

    def _event(self, user: User, event_id: str) -> Event:
        for calendar in self._calendars.values():
            event = calendar.events.get(event_id)
            if calendar.owner == user.oid and event is not None and not event.deleted:
                return event
        raise graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")

    def _profile(self, request: Request, who: str) -> Response:
        user = self._mailbox(request, who)
        return Response(
            200,
            {
                "@odata.context": f"{self.graph_base}/$metadata#users/$entity",
                "id": user.oid,
                "displayName": user.name,
                "mail": user.email,
                "userPrincipalName": user.email,
            },
        )

    def _render_calendar(self, calendar: Calendar) -> dict[str, Any]:
        owner = self._users[calendar.owner]
        return {
            "id": calendar.id,
            "name": calendar.name,
            "isDefaultCalendar": calendar.is_default,
            "canEdit": True,
            "canShare": True,
            "isRemovable": not calendar.is_default,
            "changeKey": calendar.id[-12:],
            "owner": {"name": owner.name, "address": owner.email},
        }

    def _calendars_list(self, request: Request, who: str) -> Response:
        user = self._mailbox(request, who)
        value = [self._render_calendar(c) for c in self._calendars.values() if c.owner == user.oid]
        return Response(
            200,
            {"@odata.context": f"{self.graph_base}/$metadata#users('{user.oid}')/calendars", "value": value},
        )

    def _calendar_get(self, request: Request, who: str, calendar_id: str | None = None) -> Response:
        user = self._mailbox(request, who)
        return Response(200, self._render_calendar(self._calendar(user, calendar_id)))

    # --- Graph: events ---------------------------------------------------------------------------

    def _zone(self, request: Request) -> str:
        """The zone `Prefer: outlook.timezone` asks for, if it is one we know; UTC otherwise."""
        prefer = ", ".join(request.headers.get_all("Prefer") or [])
        match = re.search(r'outlook\.timezone\s*=\s*"([^"]+)"', prefer)
        if match:
            try:
                ZoneInfo(match.group(1))
            except (ZoneInfoNotFoundError, ValueError):
                return "UTC"
            return match.group(1)
        return "UTC"

    def _page_size(self, request: Request) -> int:
        prefer = ", ".join(request.headers.get_all("Prefer") or [])
        match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer)
        return max(1, int(match.group(1))) if match else DEFAULT_PAGE

    def _preference_applied(self, zone: str) -> dict[str, str]:
        return {"Preference-Applied": f'outlook.timezone="{zone}"'}

    def _render(self, event: Event, zone_name: str = "UTC", *, expand: bool = False) -> dict[str, Any]:
        zone = ZoneInfo(zone_name)
        all_day = bool(event.props.get("isAllDay"))
        owner = self._users[self._calendars[event.calendar_id].owner]

        def shown(moment: dt.datetime) -> dict[str, str]:
            # All-day events float: they start at midnight in whichever zone the reader asks for.
            local = moment if all_day else moment.astimezone(zone)
            return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0", "timeZone": zone_name}

        content = (event.props.get("body") or {}).get("content", "")
        rendered = {
            "@odata.etag": f'W/"{event.change_key}"',
            "id": event.id,
            "createdDateTime": graph_stamp(event.created),
            "lastModifiedDateTime": graph_stamp(event.modified),
            "changeKey": event.change_key,
            "categories": [],
            "transactionId": None,
            "originalStartTimeZone": event.props["start"].get("timeZone") or "UTC",
            "originalEndTimeZone": event.props["end"].get("timeZone") or "UTC",
            "iCalUId": "040000008200E00074C5B7101A82E008" + event.id.encode().hex()[:40].upper(),
            "reminderMinutesBeforeStart": 15,
            "isReminderOn": True,
            "subject": "",
            "bodyPreview": re.sub(r"<[^>]+>", "", content)[:255],
            "importance": "normal",
            "sensitivity": "normal",
            "isCancelled": False,
            "isOrganizer": True,
            "responseRequested": True,
            "showAs": "busy",
            "type": "singleInstance",
            "webLink": f"https://outlook.office365.com/owa/?itemid={urllib.parse.quote(event.id)}&exvsurl=1",
            "body": {"contentType": "html", "content": ""},
            "location": {"displayName": "", "locationType": "default"},
            "attendees": [],
            "organizer": {"emailAddress": {"name": owner.name, "address": owner.email}},
        }
        hidden = {"singleValueExtendedProperties", "multiValueExtendedProperties"}
        rendered.update({k: v for k, v in event.props.items() if k not in hidden})
        rendered.update(isAllDay=all_day, start=shown(event.start_at), end=shown(event.end_at))
        if expand:  # Graph returns extended properties only when asked with $expand
            rendered.update({k: v for k, v in event.props.items() if k in hidden})
        return rendered

    def _validated(
        self, body: dict[str, Any], previous: dict[str, Any] | None
    ) -> tuple[dict, dt.datetime, dt.datetime]:
        """Merge a create/PATCH body over the previous properties; return them with the event's span."""
        for name in body:
            if name not in WRITABLE and name not in READ_ONLY and not name.startswith("@odata"):
                raise BadRequest(
                    f"The property '{name}' does not exist on type 'microsoft.graph.event'. Make sure to "
                    "only use property names that are defined by the type or mark the type as open type.",
                    "RequestBodyRead",
                )
        props = dict(previous or {})
        props.update({k: v for k, v in body.items() if k in WRITABLE})
        if previous is not None:
            props["transactionId"] = previous.get("transactionId")  # fixed at creation
        if props.get("showAs", "busy") not in SHOW_AS:
            raise BadRequest(
                f"Cannot convert the literal '{props['showAs']}' to 'microsoft.graph.freeBusyStatus'.",
                "RequestBodyRead",
            )
        start, end = self._moment(props.get("start"), "start"), self._moment(props.get("end"), "end")
        if end < start:
            raise BadRequest("The end time of the event must be after its start time.", "ErrorInvalidRequest")
        # _moment() gives times in the zone they were written in: midnight is checked there.
        if props.get("isAllDay") and (
            any(m.time() != dt.time() for m in (start, end)) or end - start < dt.timedelta(days=1)
        ):
            raise BadRequest(
                "An all-day event must start and end at midnight and last at least one day.",
                "ErrorInvalidRequest",
            )
        return props, start, end

    def _moment(self, value: Any, label: str) -> dt.datetime:
        if not isinstance(value, dict) or not value.get("dateTime"):
            raise BadRequest(f"The event's {label} must have a dateTime and timeZone.", "ErrorInvalidRequest")
        zone_name = value.get("timeZone") or "UTC"
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise BadRequest(
                "A valid TimeZone value must be specified. "
                f"The following TimeZone value is not supported: '{zone_name}'.",
                "TimeZoneNotSupportedException",
            ) from exc
        try:
            moment = dt.datetime.fromisoformat(value["dateTime"])
        except (TypeError, ValueError) as exc:
            raise BadRequest(
                f"Cannot convert the literal '{value['dateTime']}' to a dateTime.", "RequestBodyRead"
            ) from exc
        return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment.astimezone(zone)

    def _commit(self, event: Event, change_type: str) -> Event:
        """Store a write with a new changeKey and change number, then notify subscriptions."""
        self._seq += 1
        event.seq, event.modified, event.change_key = self._seq, utcnow(), secrets.token_urlsafe(12)
        calendar = self._calendars[event.calendar_id]
        calendar.events[event.id] = event
        now = utcnow()
        for subscription in list(self._subscriptions.values()):
            if subscription.expiration <= now:
                del self._subscriptions[subscription.id]  # Graph deletes expired subscriptions
                continue
            if (
                subscription.owner == calendar.owner
                and subscription.calendar_id in (None, calendar.id)
                and change_type in subscription.change_types.split(",")
            ):
                self._send_change(subscription, event, change_type)
        return event

    def _send_change(self, subscription: Subscription, event: Event, change_type: str) -> None:
        resource = f"Users/{subscription.owner}/Events/{event.id}"
        notification = {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": graph_stamp(subscription.expiration),
            "changeType": change_type,
            "resource": resource,
            "resourceData": {
                "@odata.type": "#Microsoft.Graph.Event",
                "@odata.id": resource,
                "@odata.etag": f'W/"{event.change_key}"',
                "id": event.id,
            },
            "tenantId": self.tenant_id,
        }
        if subscription.client_state is not None:
            notification["clientState"] = subscription.client_state
        body = json.dumps({"value": [notification]}).encode()
        self.notify(
            subscription.notification_url,
            body=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
        )

    def _create(self, user: User, calendar: Calendar, body: dict[str, Any]) -> tuple[Event, bool]:
        """Create an event, or find the one an earlier create with the same transactionId made."""
        transaction_id = body.get("transactionId")
        if transaction_id:
            existing = self._transactions.get((user.oid, transaction_id))
            for other in self._calendars.values():
                event = other.events.get(existing or "")
                if event is not None and not event.deleted:
                    return event, False
        props, start, end = self._validated(body, None)
        event_id = "AAMkA" + secrets.token_urlsafe(48) + "="
        event = self._commit(Event(event_id, calendar.id, props, start, end, created=utcnow()), "created")
        if transaction_id:
            self._transactions[(user.oid, transaction_id)] = event_id
        return event, True

    def _events_create(self, request: Request, who: str, calendar_id: str | None = None) -> Response:
        user = self._mailbox(request, who, write=True)
        event, _ = self._create(user, self._calendar(user, calendar_id), request.json())
        zone = self._zone(request)
        headers = {"Location": f"{self.graph_base}/users/{user.oid}/events/{event.id}"}
        return Response(201, self._render(event, zone), headers | self._preference_applied(zone))

    def _events_get(
        self, request: Request, who: str, event_id: str, calendar_id: str | None = None
    ) -> Response:
        user = self._mailbox(request, who)
        zone = self._zone(request)
        expand = "ExtendedProperties" in request.query.get("$expand", "")
        return Response(
            200,
            self._render(self._event(user, event_id), zone, expand=expand),
            self._preference_applied(zone),
        )

    def _events_patch(
        self, request: Request, who: str, event_id: str, calendar_id: str | None = None
    ) -> Response:
        user = self._mailbox(request, who, write=True)
        event = self._event(user, event_id)
        event.props, event.start_at, event.end_at = self._validated(request.json(), event.props)
        zone = self._zone(request)
        return Response(
            200, self._render(self._commit(event, "updated"), zone), self._preference_applied(zone)
        )

    def _events_delete(
        self, request: Request, who: str, event_id: str, calendar_id: str | None = None
    ) -> Response:
        user = self._mailbox(request, who, write=True)
        event = self._event(user, event_id)
        event.deleted = True  # kept as a tombstone so delta can report the removal
        self._commit(event, "deleted")
        return Response(204)

    def _refuse_unsupported_options(self, request: Request) -> None:
        for option in ("$filter", "$orderby", "$search"):
            if option in request.query:
                raise graph_error(
                    400, "BadRequest", f"The stand-in does not implement {option}; add it if needed."
                )

    def _paged(self, request: Request, items: list[Event], context: str, zone: str) -> Response:
        self._refuse_unsupported_options(request)
        try:
            top = min(int(request.query.get("$top", DEFAULT_PAGE)), 1000)
            skip = int(request.query.get("$skip", 0))
        except ValueError as exc:
            raise BadRequest("Invalid $top or $skip value.", "BadRequest") from exc
        expand = "ExtendedProperties" in request.query.get("$expand", "")
        body: dict[str, Any] = {
            "@odata.context": context,
            "value": [self._render(e, zone, expand=expand) for e in items[skip : skip + top]],
        }
        if skip + top < len(items):
            query = {k: v for k, v in request.query.items() if k != "$skip"} | {"$skip": str(skip + top)}
            body["@odata.nextLink"] = f"{self.url}{request.path}?{urllib.parse.urlencode(query, safe='$')}"
        return Response(200, body, self._preference_applied(zone))

    def _events_list(self, request: Request, who: str, calendar_id: str | None = None) -> Response:
        user = self._mailbox(request, who)
        calendar = self._calendar(user, calendar_id)
        items = [e for e in calendar.events.values() if not e.deleted]
        context = f"{self.graph_base}/$metadata#users('{user.oid}')/calendars('{calendar.id}')/events"
        return self._paged(request, items, context, self._zone(request))

    def _window(self, request: Request) -> tuple[dt.datetime, dt.datetime]:
        query = request.query
        if not query.get("startDateTime") or not query.get("endDateTime"):
            raise graph_error(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query string parameters "
                "StartDateTime and EndDateTime.",
            )
        try:
            start, end = (dt.datetime.fromisoformat(query[k]) for k in ("startDateTime", "endDateTime"))
        except ValueError as exc:
            raise graph_error(
                400, "ErrorInvalidParameter", "StartDateTime or EndDateTime is invalid."
            ) from exc
        # Graph reads a window without an offset as UTC.
        return (start if start.tzinfo else start.replace(tzinfo=UTC)), (
            end if end.tzinfo else end.replace(tzinfo=UTC)
        )

    def _calendar_view(self, request: Request, who: str, calendar_id: str | None = None) -> Response:
        user = self._mailbox(request, who)
        calendar = self._calendar(user, calendar_id)
        start, end = self._window(request)
        items = sorted(
            (e for e in calendar.events.values() if event_visible(e, start, end)),
            key=lambda e: (e.start_at, e.id),
        )
        context = f"{self.graph_base}/$metadata#users('{user.oid}')/calendarView"
        return self._paged(request, items, context, self._zone(request))

    def _delta(self, request: Request, who: str, calendar_id: str | None = None) -> Response:
        user = self._mailbox(request, who)
        calendar = self._calendar(user, calendar_id)
        query = request.query
        if skip_token := query.get("$skiptoken"):
            page = self._delta_pages.pop(skip_token, None)
            if page is None:
                raise graph_error(410, "SyncStateNotFound", "The sync state generation is not found.")
            items, delta_token = page
        else:
            zone = self._zone(request)
            if delta_token_in := query.get("$deltatoken"):
                state = self._delta_tokens.get(delta_token_in)
                if state is None or state.calendar_id != calendar.id:
                    raise graph_error(410, "SyncStateNotFound", "The sync state generation is not found.")
                start, end = state.start, state.end
                changed = sorted(
                    (e for e in calendar.events.values() if e.seq > state.seq), key=lambda e: e.seq
                )
                items = [
                    self._render(e, zone)
                    if event_visible(e, start, end)
                    else {
                        "@odata.type": "#microsoft.graph.event",
                        "id": e.id,
                        "@removed": {"reason": "deleted"},
                    }
                    for e in changed
                    if event_visible(e, start, end) or e.id in state.visible
                ]
            else:
                start, end = self._window(request)
                events = (e for e in calendar.events.values() if event_visible(e, start, end))
                items = [self._render(e, zone) for e in sorted(events, key=lambda e: (e.start_at, e.id))]
            visible = frozenset(e.id for e in calendar.events.values() if event_visible(e, start, end))
            delta_token = secrets.token_urlsafe(32)
            self._delta_tokens[delta_token] = DeltaState(calendar.id, start, end, self._seq, visible)
        size = self._page_size(request)
        body: dict[str, Any] = {
            "@odata.context": f"{self.graph_base}/$metadata#Collection(event)",
            "value": items[:size],
        }
        if len(items) > size:
            # Pages come from a snapshot; what changes meanwhile arrives through the delta link.
            skip_token = secrets.token_urlsafe(32)
            self._delta_pages[skip_token] = (items[size:], delta_token)
            body["@odata.nextLink"] = f"{self.url}{request.path}?$skiptoken={skip_token}"
        else:
            body["@odata.deltaLink"] = f"{self.url}{request.path}?$deltatoken={delta_token}"
        return Response(200, body)
