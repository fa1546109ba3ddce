"""A local Google Calendar API v3 and Google OAuth 2.0, for tests and the offline demo.

The real clients talk to it unchanged: google-api-python-client through
`build("calendar", "v3", credentials=..., client_options={"api_endpoint": standin.api_endpoint})`,
google-auth refreshing against `standin.token_uri`, google-auth-oauthlib's `Flow` against
`standin.auth_uri` / `standin.token_uri` (oauthlib refuses plain-HTTP token endpoints unless
`OAUTHLIB_INSECURE_TRANSPORT=1` is set; google-auth does not mind).

What a test can rely on (each deliberately as Google does it):
- errors arrive in Google's JSON format, so `googleapiclient.errors.HttpError` carries the status and
  `error_details[0]["reason"]` (`duplicate`, `notFound`, `deleted`, `fullSyncRequired`, `authError`…);
- refresh tokens are issued only for `access_type=offline`; a revoked one answers `invalid_grant`, and
  the access tokens it minted stop working too;
- a client-chosen event id must be 5–1024 base32hex characters and stays taken after deletion (409);
- deleting marks the event `cancelled`; incremental sync (`syncToken`) returns every change since the
  token, cancelled ones included, and refuses `timeMin`/`timeMax`/`orderBy`… next to a sync token (400);
- a stale or expired sync token answers 410 `fullSyncRequired`;
- watched calendars push header-only notifications: `sync` first, then `exists` on every change.

Knowingly simplified: no recurring events (`recurrence` is stored, never expanded; `singleEvents` is
accepted and ignored), no attendees' calendars or sharing (a token sees only its own account's
calendars), no `q`/`updatedMin` filtering, unsigned id_tokens, channels accept http:// addresses
(Google demands https), every consent returns a refresh token (Google only does on first consent or
`prompt=consent`), channel lifetime is capped at one week.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import json
import re
import secrets
import urllib.parse
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from standins._base import (
    UTC,
    BadRequest,
    Reply,
    Request,
    Response,
    StandInServer,
    parse_instant,
    utcnow,
)

CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"
_READ_SCOPES = {
    CALENDAR_SCOPE,
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar.events.readonly",
}
_WRITE_SCOPES = {CALENDAR_SCOPE, "https://www.googleapis.com/auth/calendar.events"}
_EVENT_ID = re.compile(r"[a-v0-9]{5,1024}")
# Set by Google, never by the client: ignored when a client sends them back.
_READ_ONLY = {
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
_NOT_WITH_SYNC_TOKEN = [
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
]
_ACCESS_TOKEN_SECONDS = 3600
_CHANNEL_MAX = dt.timedelta(days=7)


def _stamp(moment: dt.datetime) -> str:
    """Google's timestamp format: UTC with milliseconds."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _rfc3339(moment: dt.datetime, zone: ZoneInfo) -> str:
    text = moment.astimezone(zone).isoformat(timespec="seconds")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def _zone(name: str, label: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadRequest(f"Invalid time zone definition for {label} time.", "invalid") from exc


def _aware(text: str, label: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"Invalid value for: {label}", "invalid") from exc
    if moment.tzinfo is None:
        raise BadRequest(f"Invalid value for: {label} (an RFC3339 timestamp with offset)", "invalid")
    return moment


def _unsigned_jwt(claims: dict[str, Any]) -> str:
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
class _Grant:
    """What one refresh token stands for."""

    email: str
    client_id: str
    scope: str
    revoked: bool = False


@dataclass
class _AccessToken:
    email: str
    scope: str
    expires_at: dt.datetime
    grant: _Grant | None


@dataclass
class _Calendar:
    id: str
    owner: str
    summary: str
    time_zone: str
    resource_id: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)  # event id -> change number of its last write


@dataclass
class _Channel:
    id: str
    resource_id: str
    calendar_id: str
    address: str
    token: str | None
    expiration: dt.datetime
    messages: int = 0


class GoogleCalendarStandIn(StandInServer):
    """Google Calendar v3 + OAuth on 127.0.0.1. Start with `GoogleCalendarStandIn.start()`.

    Accounts appear on first use (consent with `login_hint`, `issue_tokens`, `add_account`); each has
    a primary calendar whose id is its email. Control methods are also reachable as
    `POST /_control/<method>` with JSON keyword arguments, for processes outside the test.
    """

    API_PREFIX = "/calendar/v3/"
    CONTROL_METHODS = (
        *StandInServer.CONTROL_METHODS,
        "add_account",
        "add_calendar",
        "issue_tokens",
        "create_event",
        "move_event",
        "delete_event",
        "events",
        "channels",
        "revoke_refresh_token",
        "expire_access_tokens",
        "expire_sync_tokens",
        "deny_next_consent",
        "authorization_response",
    )

    def __init__(self, *, default_email: str = "staff@example.com") -> None:
        super().__init__()
        self.default_email = default_email
        self.auth_uri = f"{self.url}/o/oauth2/auth"
        self.token_uri = f"{self.url}/token"
        self.revoke_uri = f"{self.url}/revoke"
        self.api_endpoint = f"{self.url}/calendar/v3/"
        self.clear_state()
        api = r"/calendar/v3"
        events = api + r"/calendars/(?P<calendar_id>[^/]+)/events"
        self.route("GET", r"/o/oauth2/(?:v2/)?auth", self._authorize)
        self.route("POST", r"/token", self._token)
        self.route("POST", r"/revoke", self._revoke)
        self.route("GET", api + r"/users/me/calendarList", self._calendar_list)
        self.route("GET", api + r"/calendars/(?P<calendar_id>[^/]+)", self._calendar_get)
        self.route("GET", events, self._events_list)
        self.route("POST", events, self._events_insert)
        self.route("POST", events + r"/watch", self._events_watch)
        self.route("GET", events + r"/(?P<event_id>[^/]+)", self._events_get)
        self.route("PATCH", events + r"/(?P<event_id>[^/]+)", self._events_patch)
        self.route("PUT", events + r"/(?P<event_id>[^/]+)", self._events_update)
        self.route("DELETE", events + r"/(?P<event_id>[^/]+)", self._events_delete)
        self.route("POST", api + r"/channels/stop", self._channels_stop)
        self.route("POST", api + r"/freeBusy", self._freebusy)

    def clear_state(self) -> None:
        self._seq = 0
        self._calendars: dict[str, _Calendar] = {}
        self._codes: dict[str, dict[str, Any]] = {}
        self._grants: dict[str, _Grant] = {}
        self._access: dict[str, _AccessToken] = {}
        self._sync_tokens: dict[str, tuple[str, int]] = {}
        self._pages: dict[str, tuple[str, list[dict[str, Any]], str]] = {}
        self._channels: dict[str, _Channel] = {}
        self._deny_next = False

    # --- provider formats ------------------------------------------------------------------------

    def not_found(self, request: Request) -> Response:
        return google_error(404, "Not Found", "notFound").response

    def bad_request(self, message: str, reason: str) -> Response:
        return google_error(400, message, reason).response

    def failure_response(self, status: int, **options: Any) -> Response:
        if status in (403, 429):
            return google_error(
                status, "Rate Limit Exceeded", "rateLimitExceeded", domain="usageLimits"
            ).response
        return google_error(status, "Backend Error", "backendError").response

    # --- OAuth -----------------------------------------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        query = request.query
        for name in ("client_id", "redirect_uri", "response_type", "scope"):
            if not query.get(name):
                # Google shows an error page here; it never redirects to an unverified redirect_uri.
                return Response(400, f"Error 400: invalid_request\nRequired parameter is missing: {name}")
        if query["response_type"] != "code":
            return Response(400, "Error 400: unsupported_response_type")
        answer = self._consent(query)
        separator = "&" if "?" in query["redirect_uri"] else "?"
        location = query["redirect_uri"] + separator + urllib.parse.urlencode(answer)
        return Response(302, "", {"Location": location})

    def _consent(self, query: dict[str, str]) -> dict[str, str]:
        """What the consent screen sends back to the app: a code (or an error) and the state."""
        answer: dict[str, str] = {}
        if self._deny_next:
            self._deny_next = False
            answer["error"] = "access_denied"
        else:
            email_address = query.get("login_hint") or self.default_email
            self.add_account(email_address)
            code = "4/0" + secrets.token_urlsafe(32)
            self._codes[code] = {
                "email": email_address,
                "client_id": query["client_id"],
                "redirect_uri": query["redirect_uri"],
                "scope": query["scope"],
                "offline": query.get("access_type") == "offline",
                "challenge": query.get("code_challenge"),
                "method": query.get("code_challenge_method", "plain"),
                "expires_at": utcnow() + dt.timedelta(minutes=10),
            }
            answer.update(code=code, scope=query["scope"])
        if "state" in query:
            answer["state"] = query["state"]
        return answer

    def _token(self, request: Request) -> Response:
        form = request.form()
        client_id, secret = request.client_credentials(form)
        if not client_id:
            raise oauth_error(400, "invalid_request", "Could not determine client ID from request.")
        if not secret:
            raise oauth_error(401, "invalid_client", "Unauthorized")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code = self._codes.pop(form.get("code", ""), None)
            if code is None or code["expires_at"] <= utcnow() or code["client_id"] != client_id:
                raise oauth_error(400, "invalid_grant", "Malformed auth code.")
            if form.get("redirect_uri") != code["redirect_uri"]:
                raise oauth_error(400, "redirect_uri_mismatch", "Bad Request")
            if code["challenge"]:
                verifier = form.get("code_verifier", "")
                if code["method"] == "S256":
                    digest = hashlib.sha256(verifier.encode()).digest()
                    verifier = base64.urlsafe_b64encode(digest).decode().rstrip("=")
                if not secrets.compare_digest(verifier, code["challenge"]):
                    raise oauth_error(400, "invalid_grant", "Invalid code verifier.")
            return Response(
                200, self._issue(code["email"], client_id, code["scope"], offline=code["offline"])
            )
        if grant_type == "refresh_token":
            grant = self._grants.get(form.get("refresh_token", ""))
            if grant is None or grant.revoked:
                raise oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            if grant.client_id != client_id:
                raise oauth_error(401, "unauthorized_client", "Unauthorized")
            scope = form.get("scope") or grant.scope
            if not set(scope.split()) <= set(grant.scope.split()):
                raise oauth_error(400, "invalid_scope", "Some requested scopes were invalid.")
            return Response(200, self._issue(grant.email, client_id, scope, grant=grant))
        raise oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _issue(
        self,
        email_address: str,
        client_id: str,
        scope: str,
        *,
        offline: bool = False,
        grant: _Grant | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "expires_in": _ACCESS_TOKEN_SECONDS - 1,
            "scope": scope,
            "token_type": "Bearer",
        }
        if offline:
            refresh_token = "1//0" + secrets.token_urlsafe(48)
            grant = self._grants[refresh_token] = _Grant(email_address, client_id, scope)
            body["refresh_token"] = refresh_token
        access_token = "ya29." + secrets.token_urlsafe(48)
        expires_at = utcnow() + dt.timedelta(seconds=_ACCESS_TOKEN_SECONDS)
        self._access[access_token] = _AccessToken(email_address, scope, expires_at, grant)
        body["access_token"] = access_token
        if "openid" in scope.split() or "email" in scope.split():
            now = int(utcnow().timestamp())
            body["id_token"] = _unsigned_jwt(
                {"iss": self.url, "aud": client_id, "sub": email_address, "email": email_address, "iat": now}
                | {"email_verified": True, "exp": now + _ACCESS_TOKEN_SECONDS}
            )
        return body

    def _revoke(self, request: Request) -> Response:
        token = request.query.get("token") or request.form().get("token", "")
        grant = self._grants.get(token)
        if grant:
            grant.revoked = True
        elif self._access.pop(token, None) is None:
            raise oauth_error(400, "invalid_token", "Token expired or revoked")
        return Response(200, {})

    def _caller(self, request: Request, *, write: bool = False) -> str:
        """The account the bearer token acts for; 401/403 in Google's words otherwise."""
        token = request.bearer_token()
        if not token:
            raise google_error(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
                "required",
                location="Authorization",
                locationType="header",
            )
        access = self._access.get(token)
        if access is None or access.expires_at <= utcnow() or (access.grant and access.grant.revoked):
            raise google_error(
                401, "Invalid Credentials", "authError", location="Authorization", locationType="header"
            )
        if not set(access.scope.split()) & (_WRITE_SCOPES if write else _READ_SCOPES):
            raise google_error(
                403, "Request had insufficient authentication scopes.", "insufficientPermissions"
            )
        return access.email

    # --- calendars and events --------------------------------------------------------------------

    def _calendar(self, email_address: str, calendar_id: str) -> _Calendar:
        calendar = self._calendars.get(email_address if calendar_id == "primary" else calendar_id)
        if calendar is None or calendar.owner != email_address:
            raise google_error(404, "Not Found", "notFound")
        return calendar

    def _event(self, calendar: _Calendar, event_id: str) -> dict[str, Any]:
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

    def _normalize_time(self, value: Any, label: str, calendar: _Calendar) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise BadRequest(f"Missing {label} time.", "required")
        value = {k: v for k, v in value.items() if v is not None}
        zone_name = value.get("timeZone")
        zone = _zone(zone_name or calendar.time_zone, label)
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
            return value | {"dateTime": _rfc3339(moment, zone)}
        raise BadRequest(f"Missing {label} time." if not value else f"Invalid {label} time.", "required")

    def _instant(self, value: dict[str, Any], calendar: _Calendar) -> dt.datetime:
        if "date" in value:
            # All-day events span local midnights of the calendar's zone.
            day = dt.date.fromisoformat(value["date"])
            return dt.datetime.combine(day, dt.time(), ZoneInfo(calendar.time_zone))
        return dt.datetime.fromisoformat(value["dateTime"])

    def _compose(
        self, calendar: _Calendar, event_id: str, body: dict[str, Any], previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Validate a client's event and complete it with Google's read-only fields."""
        fields = {k: v for k, v in body.items() if k not in _READ_ONLY and v is not None}
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
            "created": previous["created"] if previous else _stamp(utcnow()),
            "creator": {"email": calendar.owner, "self": True},
            "organizer": {"email": calendar.id, "self": True},
            "iCalUID": previous["iCalUID"] if previous else f"{event_id}@google.com",
            "sequence": sequence,
            "reminders": {"useDefault": True},
            "eventType": "default",
            **fields,
        }

    def _commit(self, calendar: _Calendar, event: dict[str, Any]) -> dict[str, Any]:
        """Store a write: new etag and `updated`, a change number for sync, a push to watchers."""
        self._seq += 1
        event = event | {"etag": f'"{3_400_000_000_000_000 + self._seq}"', "updated": _stamp(utcnow())}
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
        if not _EVENT_ID.fullmatch(event_id):
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
        merged = _merge(previous, request.json())
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
            "updated": _stamp(utcnow()),
            "timeZone": calendar.time_zone,
            "accessRole": "owner",
            "defaultReminders": [],
            "items": [_listed(event) for event in items[:max_results]],
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

    def _select(self, calendar: _Calendar, request: Request) -> list[dict[str, Any]]:
        query = request.query
        if sync_token := query.get("syncToken"):
            for name in _NOT_WITH_SYNC_TOKEN:
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
            time_min = _aware(query["timeMin"], "timeMin")
            events = [e for e in events if self._instant(e["end"], calendar) > time_min]
        if "timeMax" in query:
            time_max = _aware(query["timeMax"], "timeMax")
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

    # --- push notifications ----------------------------------------------------------------------

    def _events_watch(self, request: Request, calendar_id: str) -> Response:
        calendar = self._calendar(self._caller(request), calendar_id)
        body = request.json()
        for name in ("id", "type", "address"):
            if not body.get(name):
                raise BadRequest(f"Missing required field: {name}", "required")
        if body["type"] not in ("web_hook", "webhook"):
            raise BadRequest(f"Invalid value for: type ({body['type']})", "invalid")
        if body["id"] in self._channels:
            raise BadRequest(f"Channel id {body['id']} not unique", "channelIdNotUnique")
        longest = utcnow() + _CHANNEL_MAX
        expiration = longest
        if body.get("expiration"):
            try:
                asked = dt.datetime.fromtimestamp(int(body["expiration"]) / 1000, UTC)
            except (TypeError, ValueError, OverflowError) as exc:
                raise BadRequest("Invalid value for: expiration (milliseconds since the epoch)") from exc
            expiration = min(asked, longest)
        channel = _Channel(
            body["id"], calendar.resource_id, calendar.id, body["address"], body.get("token"), expiration
        )
        self._channels[channel.id] = channel
        self._push(channel, "sync")
        answer = {
            "kind": "api#channel",
            "id": channel.id,
            "resourceId": channel.resource_id,
            "resourceUri": self._resource_uri(calendar.id),
            "expiration": str(int(expiration.timestamp() * 1000)),
        }
        if channel.token is not None:
            answer["token"] = channel.token
        return Response(200, answer)

    def _resource_uri(self, calendar_id: str) -> str:
        return f"{self.api_endpoint}calendars/{urllib.parse.quote(calendar_id)}/events?alt=json"

    def _push(self, channel: _Channel, state: str) -> None:
        if channel.expiration <= utcnow():
            del self._channels[channel.id]
            return
        channel.messages += 1
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": email.utils.format_datetime(channel.expiration, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": self._resource_uri(channel.calendar_id),
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel.messages),
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        self.notify(channel.address, headers=headers)

    def _channels_stop(self, request: Request) -> Response:
        self._caller(request)
        body = request.json()
        channel = self._channels.get(body.get("id", ""))
        if channel is None or channel.resource_id != body.get("resourceId"):
            raise google_error(
                404, f"Channel '{body.get('id')}' not found for project 'stand-in'", "notFound"
            )
        del self._channels[channel.id]
        return Response(204)

    # --- free/busy -------------------------------------------------------------------------------

    def _freebusy(self, request: Request) -> Response:
        email_address = self._caller(request)
        body = request.json()
        for name in ("timeMin", "timeMax"):
            if not body.get(name):
                raise BadRequest(f"Missing {name} parameter.", "required")
        time_min, time_max = _aware(body["timeMin"], "timeMin"), _aware(body["timeMax"], "timeMax")
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
                    {"start": _rfc3339(s, ZoneInfo("UTC")), "end": _rfc3339(e, ZoneInfo("UTC"))}
                    for s, e in busy
                ]
            }
        return Response(
            200,
            {
                "kind": "calendar#freeBusy",
                "timeMin": _stamp(time_min),
                "timeMax": _stamp(time_max),
                "calendars": calendars,
            },
        )

    # --- control: what a test (or the staff member in Google's UI) does directly -----------------

    def add_account(self, email: str, *, time_zone: str = "UTC") -> str:
        """Create the account (idempotent); return its primary calendar id, which is the email."""
        with self.lock:
            if email not in self._calendars:
                self._calendars[email] = _Calendar(email, email, email, time_zone, secrets.token_urlsafe(20))
            return email

    def add_calendar(self, email: str, *, summary: str = "Secondary", time_zone: str = "UTC") -> str:
        """Give the account another calendar; return its id."""
        with self.lock:
            self.add_account(email)
            calendar_id = f"{secrets.token_hex(16)}@group.calendar.google.com"
            self._calendars[calendar_id] = _Calendar(
                calendar_id, email, summary, time_zone, secrets.token_urlsafe(20)
            )
            return calendar_id

    def issue_tokens(
        self, email: str, *, client_id: str = "stand-in-client", scope: str = CALENDAR_SCOPE
    ) -> dict:
        """A token response as if `email` had just consented offline, without the browser round trip."""
        with self.lock:
            self.add_account(email)
            return self._issue(email, client_id, scope, offline=True)

    def authorization_response(self, auth_uri: str) -> dict[str, str]:
        """Play the user consenting at `auth_uri`; return the query that reaches the redirect URI."""
        with self.lock:
            return self._consent(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(auth_uri).query)))

    def create_event(
        self,
        calendar_id: str,
        *,
        start: dt.datetime | dt.date | str,
        end: dt.datetime | dt.date | str,
        summary: str = "Busy",
        event_id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Add an event as the calendar's owner would in Google's UI; watchers are notified."""
        with self.lock:
            calendar = self._control_calendar(calendar_id)
            event_id = event_id or base64.b32hexencode(secrets.token_bytes(16)).decode().lower().rstrip("=")
            body = {"summary": summary, "start": _control_time(start), "end": _control_time(end), **fields}
            return self._commit(calendar, self._compose(calendar, event_id, body))

    def move_event(
        self,
        calendar_id: str,
        event_id: str,
        *,
        start: dt.datetime | dt.date | str,
        end: dt.datetime | dt.date | str,
    ) -> dict[str, Any]:
        """Move an event (ours or theirs) to new times, as its owner would in Google's UI."""
        with self.lock:
            calendar = self._control_calendar(calendar_id)
            previous = calendar.events[event_id]
            body = previous | {"start": _control_time(start), "end": _control_time(end)}
            return self._commit(calendar, self._compose(calendar, event_id, body, previous))

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        """Delete an event as its owner would in Google's UI (it becomes `cancelled`)."""
        with self.lock:
            calendar = self._control_calendar(calendar_id)
            self._commit(calendar, calendar.events[event_id] | {"status": "cancelled"})

    def events(self, calendar_id: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """The calendar's events as Google stores them, in insertion order."""
        with self.lock:
            calendar = self._control_calendar(calendar_id)
            return [e for e in calendar.events.values() if include_deleted or e["status"] != "cancelled"]

    def channels(self, calendar_id: str | None = None) -> list[dict[str, Any]]:
        """Channels that would still be notified, optionally only those on one calendar."""
        with self.lock:
            now = utcnow()
            return [
                {"id": c.id, "resourceId": c.resource_id, "calendarId": c.calendar_id, "address": c.address}
                for c in self._channels.values()
                if c.expiration > now and calendar_id in (None, c.calendar_id)
            ]

    def revoke_refresh_token(self, refresh_token: str) -> None:
        """As if the user removed the app's access: refresh answers invalid_grant, its access tokens die."""
        with self.lock:
            self._grants[refresh_token].revoked = True

    def expire_access_tokens(self) -> None:
        """Expire every access token now; clients must refresh (google-auth does so on a 401)."""
        with self.lock:
            past = utcnow() - dt.timedelta(seconds=1)
            for access in self._access.values():
                access.expires_at = past

    def expire_sync_tokens(self) -> None:
        """Invalidate every sync token handed out so far: the next incremental sync answers 410."""
        with self.lock:
            self._sync_tokens.clear()

    def deny_next_consent(self) -> None:
        """The next consent screen is declined: the redirect carries `error=access_denied`."""
        with self.lock:
            self._deny_next = True

    def _control_calendar(self, calendar_id: str) -> _Calendar:
        if calendar_id not in self._calendars:
            self.add_account(calendar_id)
        return self._calendars[calendar_id]


def _control_time(value: dt.datetime | dt.date | str) -> dict[str, str]:
    moment = parse_instant(value)
    if isinstance(moment, dt.datetime):
        return {"dateTime": moment.isoformat()}
    return {"date": moment.isoformat()}


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
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
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _listed(event: dict[str, Any]) -> dict[str, Any]:
    """How an event appears in a list: Google guarantees little more than the id for cancelled ones."""
    if event["status"] != "cancelled":
        return event
    return {key: event[key] for key in ("kind", "etag", "id", "status", "updated")}
