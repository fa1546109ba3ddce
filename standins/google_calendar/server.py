"""The Google Calendar stand-in server: routes, state, provider error formats and the control methods a
test (or the staff member, in Google's UI) calls directly.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import urllib.parse
from typing import Any

from standins._base import (
    Request,
    Response,
    StandInServer,
    utcnow,
)
from standins._oauth import TokenControls
from standins.google_calendar.events import GoogleEvents
from standins.google_calendar.oauth import GoogleOAuth
from standins.google_calendar.push import GooglePush
from standins.google_calendar.records import (
    CALENDAR_SCOPE,
    AccessToken,
    Calendar,
    Channel,
    Grant,
    control_time,
    google_error,
)


class GoogleCalendarStandIn(GoogleOAuth, GoogleEvents, GooglePush, TokenControls, StandInServer):
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
        self._calendars: dict[str, Calendar] = {}
        self._codes: dict[str, dict[str, Any]] = {}
        self._grants: dict[str, Grant] = {}
        self._access: dict[str, AccessToken] = {}
        self._sync_tokens: dict[str, tuple[str, int]] = {}
        self._pages: dict[str, tuple[str, list[dict[str, Any]], str]] = {}
        self._channels: dict[str, Channel] = {}
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

    # --- control: what a test (or the staff member in Google's UI) does directly -----------------

    def add_account(self, email: str, *, time_zone: str = "UTC") -> str:
        """Create the account (idempotent); return its primary calendar id, which is the email."""
        with self.lock:
            if email not in self._calendars:
                self._calendars[email] = Calendar(email, email, email, time_zone, secrets.token_urlsafe(20))
            return email

    def add_calendar(self, email: str, *, summary: str = "Secondary", time_zone: str = "UTC") -> str:
        """Give the account another calendar; return its id."""
        with self.lock:
            self.add_account(email)
            calendar_id = f"{secrets.token_hex(16)}@group.calendar.google.com"
            self._calendars[calendar_id] = Calendar(
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
            body = {"summary": summary, "start": control_time(start), "end": control_time(end), **fields}
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
            body = previous | {"start": control_time(start), "end": control_time(end)}
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

    def expire_sync_tokens(self) -> None:
        """Invalidate every sync token handed out so far: the next incremental sync answers 410."""
        with self.lock:
            self._sync_tokens.clear()

    def _control_calendar(self, calendar_id: str) -> Calendar:
        if calendar_id not in self._calendars:
            self.add_account(calendar_id)
        return self._calendars[calendar_id]
