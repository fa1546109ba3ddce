"""The Microsoft stand-in server: routes, state, provider error formats and the control methods a test
(or the user, in Outlook) calls directly.
"""

from __future__ import annotations

import datetime as dt
import secrets
import urllib.parse
import uuid
from typing import Any

from standins._base import (
    Request,
    Response,
    StandInServer,
    utcnow,
)
from standins._oauth import TokenControls
from standins.microsoft.calendars import GraphCalendars
from standins.microsoft.identity import IdentityPlatform
from standins.microsoft.records import (
    GRAPH_SCOPE,
    AccessToken,
    Calendar,
    DeltaState,
    Grant,
    Subscription,
    User,
    control_span,
    graph_error,
)
from standins.microsoft.subscriptions import GraphSubscriptions


class MicrosoftStandIn(IdentityPlatform, GraphCalendars, GraphSubscriptions, TokenControls, StandInServer):
    """Identity platform + Graph calendar on https://127.0.0.1. Start with `MicrosoftStandIn.start()`.

    Users appear on first use (sign-in with `login_hint`, `issue_tokens`, `add_user`), each with a
    default calendar. Control methods are also reachable as `POST /_control/<method>` with JSON
    keyword arguments, for processes outside the test.
    """

    API_PREFIX = "/v1.0/"
    CONTROL_METHODS = (
        *StandInServer.CONTROL_METHODS,
        "add_user",
        "add_calendar",
        "default_calendar_id",
        "issue_tokens",
        "create_event",
        "move_event",
        "delete_event",
        "events",
        "subscriptions",
        "revoke_refresh_tokens",
        "expire_access_tokens",
        "expire_delta_tokens",
        "deny_next_consent",
        "authorization_response",
    )

    def __init__(self, *, default_email: str = "staff@example.com") -> None:
        super().__init__(tls=True)
        self.default_email = default_email
        self.tenant_id = str(uuid.uuid4())
        self.authority = f"{self.url}/common"
        self.graph_base = f"{self.url}/v1.0"
        self.clear_state()
        me = r"/v1\.0/(?P<who>me|users/[^/]+)"
        calendar = r"(?:/calendars/(?P<calendar_id>[^/]+)|/calendar)?"
        identity = r"/(?P<tenant>[^/]+)"
        self.route("GET", identity + r"/v2\.0/\.well-known/openid-configuration", self._openid_configuration)
        self.route("GET", identity + r"/oauth2/v2\.0/authorize", self._authorize)
        self.route("POST", identity + r"/oauth2/v2\.0/token", self._token)
        self.route("GET", me, self._profile)
        self.route("GET", me + r"/calendars", self._calendars_list)
        self.route("GET", me + r"(?:/calendars/(?P<calendar_id>[^/]+)|/calendar)", self._calendar_get)
        self.route("GET", me + calendar + r"/events", self._events_list)
        self.route("POST", me + calendar + r"/events", self._events_create)
        self.route("GET", me + calendar + r"/events/(?P<event_id>[^/]+)", self._events_get)
        self.route("PATCH", me + calendar + r"/events/(?P<event_id>[^/]+)", self._events_patch)
        self.route("DELETE", me + calendar + r"/events/(?P<event_id>[^/]+)", self._events_delete)
        self.route("GET", me + calendar + r"/calendarView", self._calendar_view)
        self.route("GET", me + calendar + r"/calendarView/delta", self._delta)
        # The validation handshake calls out to the receiver, which may call back in: no lock held.
        self.route("POST", r"/v1\.0/subscriptions", self._subscriptions_create, locked=False)
        self.route("GET", r"/v1\.0/subscriptions", self._subscriptions_list)
        self.route("GET", r"/v1\.0/subscriptions/(?P<subscription_id>[^/]+)", self._subscriptions_get)
        self.route("PATCH", r"/v1\.0/subscriptions/(?P<subscription_id>[^/]+)", self._subscriptions_renew)
        self.route("DELETE", r"/v1\.0/subscriptions/(?P<subscription_id>[^/]+)", self._subscriptions_delete)

    def clear_state(self) -> None:
        self._seq = 0
        self._users: dict[str, User] = {}  # by oid
        self._calendars: dict[str, Calendar] = {}
        self._codes: dict[str, dict[str, Any]] = {}
        self._redeemed: set[str] = set()
        self._grants: dict[str, Grant] = {}
        self._access: dict[str, AccessToken] = {}
        self._transactions: dict[tuple[str, str], str] = {}
        self._delta_tokens: dict[str, DeltaState] = {}
        self._delta_pages: dict[str, tuple[list[dict[str, Any]], str]] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._deny_next = False

    def session(self) -> Any:
        """A requests.Session that trusts this stand-in (and only it), ignoring proxy/CA variables."""
        import requests

        session = requests.Session()
        session.verify = self.ca_cert
        session.trust_env = False
        return session

    # --- provider formats ------------------------------------------------------------------------

    def not_found(self, request: Request) -> Response:
        if request.path.startswith(self.API_PREFIX):
            return graph_error(
                400, "BadRequest", f"Resource not found for the segment '{request.path}'."
            ).response
        return Response(404, {"error": "not_found"})

    def bad_request(self, message: str, reason: str) -> Response:
        return graph_error(400, reason if reason != "invalid" else "BadRequest", message).response

    def failure_response(self, status: int, **options: Any) -> Response:
        retry_after = {"Retry-After": str(options.get("retry_after", 1))}
        if status == 429:
            return graph_error(429, "TooManyRequests", "Too many requests.", retry_after).response
        if status == 503:
            return graph_error(503, "ServiceNotAvailable", "Service unavailable.", retry_after).response
        return graph_error(status, "UnknownError", "Injected failure.").response

    # --- control: what a test (or the user in Outlook) does directly -----------------------------

    def _user(self, email: str) -> User:
        for user in self._users.values():
            if user.email.lower() == email.lower():
                return user
        user = User(email, str(uuid.uuid4()), email.split("@")[0].replace(".", " ").title())
        self._users[user.oid] = user
        calendar_id = "AAMkAGI2" + secrets.token_urlsafe(32) + "="
        self._calendars[calendar_id] = Calendar(calendar_id, user.oid, "Calendar", is_default=True)
        return user

    def authorization_response(self, auth_uri: str) -> dict[str, str]:
        """Play the user signing in at `auth_uri`; return what reaches the redirect URI (query or form)."""
        with self.lock:
            return self._consent(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(auth_uri).query)))

    def add_user(self, email: str) -> str:
        """Create the user with a default calendar (idempotent); return the user's object id."""
        with self.lock:
            return self._user(email).oid

    def add_calendar(self, email: str, *, name: str = "Other calendar") -> str:
        """Give the user another calendar; return its id."""
        with self.lock:
            user = self._user(email)
            calendar_id = "AAMkAGI2" + secrets.token_urlsafe(32) + "="
            self._calendars[calendar_id] = Calendar(calendar_id, user.oid, name, is_default=False)
            return calendar_id

    def default_calendar_id(self, email: str) -> str:
        with self.lock:
            return self._calendar(self._user(email), None).id

    def issue_tokens(
        self,
        email: str,
        *,
        client_id: str = "stand-in-client",
        scope: str = f"{GRAPH_SCOPE} offline_access openid profile",
    ) -> dict[str, Any]:
        """A token response as if `email` had just signed in and consented, without the browser."""
        with self.lock:
            return self._issue(self._user(email).oid, client_id, scope, "common", None, {"client_info": "1"})

    def create_event(
        self,
        email: str,
        *,
        start: dt.datetime | dt.date | str,
        end: dt.datetime | dt.date | str,
        subject: str = "Busy",
        show_as: str = "busy",
        calendar_id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Add an event as the user would in Outlook (dates make an all-day event); subscribers hear of it."""
        with self.lock:
            user = self._user(email)
            body = {"subject": subject, "showAs": show_as, **control_span(start, end), **fields}
            event, _ = self._create(user, self._calendar(user, calendar_id), body)
            return self._render(event)

    def move_event(
        self,
        email: str,
        event_id: str,
        *,
        start: dt.datetime | dt.date | str,
        end: dt.datetime | dt.date | str,
    ) -> dict[str, Any]:
        """Move an event (ours or theirs) as the user would in Outlook."""
        with self.lock:
            event = self._event(self._user(email), event_id)
            event.props, event.start_at, event.end_at = self._validated(control_span(start, end), event.props)
            return self._render(self._commit(event, "updated"))

    def delete_event(self, email: str, event_id: str) -> None:
        """Delete an event as the user would in Outlook."""
        with self.lock:
            event = self._event(self._user(email), event_id)
            event.deleted = True
            self._commit(event, "deleted")

    def events(self, email: str, *, calendar_id: str | None = None) -> list[dict[str, Any]]:
        """The live events of a calendar (default: the user's default calendar), as Graph renders them."""
        with self.lock:
            calendar = self._calendar(self._user(email), calendar_id)
            return [self._render(e, expand=True) for e in calendar.events.values() if not e.deleted]

    def subscriptions(self) -> list[dict[str, Any]]:
        """Subscriptions still alive, whichever app made them."""
        with self.lock:
            now = utcnow()
            return [self._render_subscription(s) for s in self._subscriptions.values() if s.expiration > now]

    def revoke_refresh_tokens(self, email: str) -> None:
        """As an admin revoking the user's sessions: every refresh token answers invalid_grant (AADSTS50173).

        Access tokens already issued keep working until they expire, as with Microsoft.
        """
        with self.lock:
            oid = self._user(email).oid
            for grant in self._grants.values():
                if grant.oid == oid:
                    grant.revoked = True

    def expire_delta_tokens(self) -> None:
        """Forget every delta and skip token: the next delta round answers 410 SyncStateNotFound."""
        with self.lock:
            self._delta_tokens.clear()
            self._delta_pages.clear()
