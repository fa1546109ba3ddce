"""A local Microsoft identity platform (v2.0 endpoints) and Microsoft Graph calendar, over TLS.

msal only accepts https authorities, so the stand-in serves TLS with a certificate made at start for
127.0.0.1; `standin.ca_cert` is its path. The real clients talk to it unchanged:

    session = standin.session()        # requests.Session(verify=ca_cert, trust_env=False)
    app = msal.ConfidentialClientApplication(client_id, client_credential=secret,
        authority=standin.authority, validate_authority=False, http_client=session)
    session.get(f"{standin.graph_base}/me/calendars", headers={"Authorization": f"Bearer {token}"})

(`trust_env=False` matters: REQUESTS_CA_BUNDLE in the environment would otherwise override `verify`.)

What a test can rely on (each deliberately as Microsoft does it):
- the authorization-code flow with PKCE and nonce (`response_mode` query: a 302; form_post: an
  auto-submitting form, as msal recommends), refresh tokens that rotate (old ones stay valid
  until revoked), client_credentials for `/.default` scopes; errors are AADSTS-style JSON
  (`invalid_grant` with `error_codes`), a revoked user answers AADSTS50173;
- Graph errors are `{"error": {"code", "message", "innerError"}}`: `InvalidAuthenticationToken`
  (401), `ErrorItemNotFound` (404), `RequestBodyRead` for unknown event properties (400);
- event times come back in UTC with 7-digit fractions unless `Prefer: outlook.timezone="<IANA>"`;
- a create that repeats a `transactionId` returns the event made the first time;
- `calendarView/delta` pages by `Prefer: odata.maxpagesize`, follows `@odata.nextLink` to an
  `@odata.deltaLink`, and reports deletions and events that left the window as `@removed`;
- subscriptions are refused unless the endpoint echoes `validationToken` as text/plain within 10 s;
  changes POST `{"value": [...]}` with the subscription's clientState.

Knowingly simplified: no recurring events, attendees or shared mailboxes; `$filter`, `$orderby`,
`$search` are refused rather than ignored (so code relying on them fails loudly), `$select` is
ignored; Windows time-zone names are not understood (IANA only); all-day events are evaluated
against windows in UTC; tokens are opaque strings and id_tokens are unsigned; notification URLs may be
http:// (Graph demands https); no lifecycle notifications.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import re
import secrets
import urllib.parse
import uuid
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
    http_post,
    parse_instant,
    utcnow,
)

GRAPH_SCOPE = "Calendars.ReadWrite"
_GRAPH_RESOURCE = "https://graph.microsoft.com/"
_WRITABLE = {
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
_READ_ONLY = {
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
_SHOW_AS = {"free", "tentative", "busy", "oof", "workingElsewhere", "unknown"}
_CHANGE_TYPES = {"created", "updated", "deleted"}
_SUBSCRIPTION_MAX = dt.timedelta(minutes=10080)  # Graph's limit for Outlook events
_ACCESS_TOKEN_SECONDS = 3600
_DEFAULT_PAGE = 10
_RESOURCE = re.compile(
    r"/?(?:me|users/(?P<user>[^/]+))(?:/calendars/(?P<calendar>[^/]+)|(?P<default>/calendar))?/events",
    re.IGNORECASE,
)


def _stamp(moment: dt.datetime) -> str:
    """Graph's instant format: UTC with seven fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _b64(value: dict[str, Any]) -> str:
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
class _User:
    email: str
    oid: str
    name: str


@dataclass
class _Grant:
    oid: str
    client_id: str
    scope: str
    revoked: bool = False


@dataclass
class _AccessToken:
    oid: str | None  # None: an application token (client_credentials)
    client_id: str
    scope: str
    expires_at: dt.datetime


@dataclass
class _Event:
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
class _Calendar:
    id: str
    owner: str  # user oid
    name: str
    is_default: bool
    events: dict[str, _Event] = field(default_factory=dict)


@dataclass
class _Subscription:
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
class _DeltaState:
    calendar_id: str
    start: dt.datetime
    end: dt.datetime
    seq: int
    visible: frozenset[str]


class MicrosoftStandIn(StandInServer):
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
        self._users: dict[str, _User] = {}  # by oid
        self._calendars: dict[str, _Calendar] = {}
        self._codes: dict[str, dict[str, Any]] = {}
        self._redeemed: set[str] = set()
        self._grants: dict[str, _Grant] = {}
        self._access: dict[str, _AccessToken] = {}
        self._transactions: dict[tuple[str, str], str] = {}
        self._delta_tokens: dict[str, _DeltaState] = {}
        self._delta_pages: dict[str, tuple[list[dict[str, Any]], str]] = {}
        self._subscriptions: dict[str, _Subscription] = {}
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

    # --- identity platform -----------------------------------------------------------------------

    def _issuer(self, tenant: str) -> str:
        if tenant.lower() in ("common", "organizations", "consumers"):
            return f"{self.url}/{{tenantid}}/v2.0"
        return f"{self.url}/{self.tenant_id}/v2.0"

    def _openid_configuration(self, request: Request, tenant: str) -> Response:
        base = f"{self.url}/{tenant}"
        return Response(
            200,
            {
                "issuer": self._issuer(tenant),
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "response_modes_supported": ["query", "form_post"],
                "response_types_supported": ["code"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "subject_types_supported": ["pairwise"],
                "msgraph_host": "graph.microsoft.com",
            },
        )

    def _authorize(self, request: Request, tenant: str) -> Response:
        query = request.query
        for name in ("client_id", "redirect_uri", "scope"):
            if not query.get(name):
                # Like Microsoft: a broken request gets an error page, never a redirect.
                return Response(400, f"AADSTS900144: The request must contain the parameter '{name}'.")
        answer = self._consent(query)
        if query.get("response_mode") == "form_post":
            fields = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in answer.items()
            )
            action = html.escape(query["redirect_uri"])
            page = (
                '<html><body onload="document.forms[0].submit()">'
                f'<form method="post" action="{action}">{fields}</form></body></html>'
            )
            return Response(200, page, {"Content-Type": "text/html; charset=utf-8"})
        separator = "&" if "?" in query["redirect_uri"] else "?"
        location = query["redirect_uri"] + separator + urllib.parse.urlencode(answer)
        return Response(302, "", {"Location": location})

    def _consent(self, query: dict[str, str]) -> dict[str, str]:
        """What the sign-in page sends back to the app: a code (or an error) and the state."""
        answer: dict[str, str] = {}
        if query.get("response_type") != "code":
            answer.update(error="unsupported_response_type", error_description="AADSTS70005: response_type")
        elif self._deny_next:
            self._deny_next = False
            answer.update(error="access_denied", error_description="AADSTS65004: User declined to consent.")
        else:
            user = self._user(query.get("login_hint") or self.default_email)
            code = "0.A" + secrets.token_urlsafe(64)
            self._codes[code] = {
                "oid": user.oid,
                "client_id": query["client_id"],
                "redirect_uri": query["redirect_uri"],
                "scope": query["scope"],
                "nonce": query.get("nonce"),
                "challenge": query.get("code_challenge"),
                "method": query.get("code_challenge_method", "plain"),
                "expires_at": utcnow() + dt.timedelta(minutes=10),
            }
            answer.update(code=code, session_state=str(uuid.uuid4()))
        if "state" in query:
            answer["state"] = query["state"]
        return answer

    def _token(self, request: Request, tenant: str) -> Response:
        form = request.form()
        client_id, secret = request.client_credentials(form)
        if not client_id:
            raise aad_error(400, "invalid_request", 900144, "The request body must contain: 'client_id'.")
        if not secret:
            raise aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code_value = form.get("code", "")
            if code_value in self._redeemed:
                raise aad_error(
                    400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed."
                )
            code = self._codes.pop(code_value, None)
            if code is None or code["expires_at"] <= utcnow() or code["client_id"] != client_id:
                raise aad_error(
                    400, "invalid_grant", 70000, "The provided value for the 'code' parameter is not valid."
                )
            self._redeemed.add(code_value)
            if form.get("redirect_uri") != code["redirect_uri"]:
                raise aad_error(
                    400, "invalid_grant", 50148, "The redirect_uri does not match the one authorized."
                )
            if code["challenge"]:
                verifier = form.get("code_verifier", "")
                if code["method"] == "S256":
                    digest = hashlib.sha256(verifier.encode()).digest()
                    verifier = base64.urlsafe_b64encode(digest).decode().rstrip("=")
                if not secrets.compare_digest(verifier, code["challenge"]):
                    raise aad_error(
                        400,
                        "invalid_grant",
                        501481,
                        "The Code_Verifier does not match the code_challenge supplied.",
                    )
            scope = form.get("scope") or code["scope"]
            return Response(200, self._issue(code["oid"], client_id, scope, tenant, code["nonce"], form))
        if grant_type == "refresh_token":
            grant = self._grants.get(form.get("refresh_token", ""))
            if grant is None:
                raise aad_error(
                    400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
                )
            if grant.revoked:
                raise aad_error(
                    400,
                    "invalid_grant",
                    50173,
                    "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
                )
            if grant.client_id != client_id:
                raise aad_error(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
            scope = form.get("scope") or grant.scope
            return Response(200, self._issue(grant.oid, client_id, scope, tenant, None, form))
        if grant_type == "client_credentials":
            scope = form.get("scope", "")
            if not scope.endswith("/.default") or " " in scope:
                raise aad_error(
                    400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid."
                )
            token = secrets.token_urlsafe(64)
            expires_at = utcnow() + dt.timedelta(seconds=_ACCESS_TOKEN_SECONDS)
            self._access[token] = _AccessToken(None, client_id, scope, expires_at)
            seconds = _ACCESS_TOKEN_SECONDS - 1
            body = {
                "token_type": "Bearer",
                "expires_in": seconds,
                "ext_expires_in": seconds,
                "access_token": token,
            }
            return Response(200, body)
        raise aad_error(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant_type}'.",
        )

    def _issue(
        self, oid: str, client_id: str, scope: str, tenant: str, nonce: str | None, form: dict[str, str]
    ) -> dict[str, Any]:
        requested = scope.split()
        seconds = _ACCESS_TOKEN_SECONDS - 1
        body: dict[str, Any] = {
            "token_type": "Bearer",
            # The identity platform never echoes offline_access, and always grants profile with openid.
            "scope": " ".join(s for s in requested if s != "offline_access"),
            "expires_in": seconds,
            "ext_expires_in": seconds,
        }
        token = secrets.token_urlsafe(64)
        expires_at = utcnow() + dt.timedelta(seconds=_ACCESS_TOKEN_SECONDS)
        self._access[token] = _AccessToken(oid, client_id, body["scope"], expires_at)
        body["access_token"] = token
        if "offline_access" in requested:
            refresh_token = "0.A" + secrets.token_urlsafe(96)
            self._grants[refresh_token] = _Grant(oid, client_id, scope)
            body["refresh_token"] = refresh_token
        user = self._users[oid]
        if "openid" in requested:
            now = int(utcnow().timestamp())
            claims = {
                "aud": client_id,
                "iss": f"{self.url}/{self.tenant_id}/v2.0",
                "iat": now,
                "nbf": now,
                "exp": now + _ACCESS_TOKEN_SECONDS,
                "name": user.name,
                "oid": user.oid,
                "preferred_username": user.email,
                "sub": hashlib.sha256(f"{user.oid}{client_id}".encode()).hexdigest()[:43],
                "tid": self.tenant_id,
                "ver": "2.0",
            }
            if nonce:
                claims["nonce"] = nonce
            # msal decodes id_token claims without verifying them, so an unsigned token is enough.
            body["id_token"] = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
        if form.get("client_info") == "1":
            body["client_info"] = _b64({"uid": user.oid, "utid": self.tenant_id})
        return body

    # --- Graph: authentication and mailbox -------------------------------------------------------

    def _token_for(self, request: Request) -> _AccessToken:
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

    def _mailbox(self, request: Request, who: str, *, write: bool = False) -> _User:
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
            granted = {s.removeprefix(_GRAPH_RESOURCE) for s in access.scope.split()}
            needed = {"Calendars.ReadWrite"} if write else {"Calendars.Read", "Calendars.ReadWrite"}
            if access.oid != user.oid or not granted & needed:
                raise graph_error(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
        return user

    def _calendar(self, user: _User, calendar_id: str | None) -> _Calendar:
        if calendar_id is None:
            return next(c for c in self._calendars.values() if c.owner == user.oid and c.is_default)
        calendar = self._calendars.get(calendar_id)
        if calendar is None or calendar.owner != user.oid:
            raise graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return calendar

    def _event(self, user: _User, event_id: str) -> _Event:
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

    def _render_calendar(self, calendar: _Calendar) -> dict[str, Any]:
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
        return max(1, int(match.group(1))) if match else _DEFAULT_PAGE

    def _preference_applied(self, zone: str) -> dict[str, str]:
        return {"Preference-Applied": f'outlook.timezone="{zone}"'}

    def _render(self, event: _Event, zone_name: str = "UTC", *, expand: bool = False) -> dict[str, Any]:
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
            "createdDateTime": _stamp(event.created),
            "lastModifiedDateTime": _stamp(event.modified),
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
            if name not in _WRITABLE and name not in _READ_ONLY and not name.startswith("@odata"):
                raise BadRequest(
                    f"The property '{name}' does not exist on type 'microsoft.graph.event'. Make sure to "
                    "only use property names that are defined by the type or mark the type as open type.",
                    "RequestBodyRead",
                )
        props = dict(previous or {})
        props.update({k: v for k, v in body.items() if k in _WRITABLE})
        if previous is not None:
            props["transactionId"] = previous.get("transactionId")  # fixed at creation
        if props.get("showAs", "busy") not in _SHOW_AS:
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

    def _commit(self, event: _Event, change_type: str) -> _Event:
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

    def _send_change(self, subscription: _Subscription, event: _Event, change_type: str) -> None:
        resource = f"Users/{subscription.owner}/Events/{event.id}"
        notification = {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": _stamp(subscription.expiration),
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

    def _create(self, user: _User, calendar: _Calendar, body: dict[str, Any]) -> tuple[_Event, bool]:
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
        event = self._commit(_Event(event_id, calendar.id, props, start, end, created=utcnow()), "created")
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

    def _paged(self, request: Request, items: list[_Event], context: str, zone: str) -> Response:
        self._refuse_unsupported_options(request)
        try:
            top = min(int(request.query.get("$top", _DEFAULT_PAGE)), 1000)
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
            (e for e in calendar.events.values() if _visible(e, start, end)), key=lambda e: (e.start_at, e.id)
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
                    if _visible(e, start, end)
                    else {
                        "@odata.type": "#microsoft.graph.event",
                        "id": e.id,
                        "@removed": {"reason": "deleted"},
                    }
                    for e in changed
                    if _visible(e, start, end) or e.id in state.visible
                ]
            else:
                start, end = self._window(request)
                events = (e for e in calendar.events.values() if _visible(e, start, end))
                items = [self._render(e, zone) for e in sorted(events, key=lambda e: (e.start_at, e.id))]
            visible = frozenset(e.id for e in calendar.events.values() if _visible(e, start, end))
            delta_token = secrets.token_urlsafe(32)
            self._delta_tokens[delta_token] = _DeltaState(calendar.id, start, end, self._seq, visible)
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

    # --- Graph: subscriptions --------------------------------------------------------------------

    def _render_subscription(self, subscription: _Subscription) -> dict[str, Any]:
        return {
            "@odata.context": f"{self.graph_base}/$metadata#subscriptions/$entity",
            "id": subscription.id,
            "resource": subscription.resource,
            "applicationId": subscription.application_id,
            "changeType": subscription.change_types,
            "clientState": subscription.client_state,
            "notificationUrl": subscription.notification_url,
            "expirationDateTime": _stamp(subscription.expiration),
            "creatorId": subscription.owner,
            "latestSupportedTlsVersion": "v1_2",
        }

    def _expiration(self, value: Any) -> dt.datetime:
        try:
            expiration = dt.datetime.fromisoformat(value)
        except (TypeError, ValueError) as exc:
            raise graph_error(
                400, "InvalidRequest", "expirationDateTime is required and must be a date."
            ) from exc
        expiration = expiration if expiration.tzinfo else expiration.replace(tzinfo=UTC)
        now = utcnow()
        if expiration <= now or expiration > now + _SUBSCRIPTION_MAX:
            raise graph_error(
                400,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: BadRequest; Reason: Subscription expiration can "
                f"only be {_SUBSCRIPTION_MAX.total_seconds() // 60:.0f} minutes in the future.]",
            )
        return expiration

    def _subscription(self, request: Request, subscription_id: str) -> _Subscription:
        access = self._token_for(request)
        subscription = self._subscriptions.get(subscription_id)
        if (
            subscription is None
            or subscription.expiration <= utcnow()
            or subscription.application_id != access.client_id
        ):
            raise graph_error(404, "ResourceNotFound", "The object was not found.")
        return subscription

    def _subscriptions_create(self, request: Request) -> Response:
        body = request.json()
        with self.lock:
            match = _RESOURCE.fullmatch(body.get("resource") or "")
            if match is None:
                raise graph_error(
                    400, "InvalidRequest", f"Resource '{body.get('resource')}' is not supported."
                )
            who = f"users/{match['user']}" if match["user"] else "me"
            user = self._mailbox(request, who)
            calendar_id = self._calendar(user, None).id if match["default"] else match["calendar"]
            if calendar_id:
                self._calendar(user, calendar_id)
            change_types = body.get("changeType") or ""
            if not change_types or not set(change_types.split(",")) <= _CHANGE_TYPES:
                raise graph_error(400, "InvalidRequest", f"Invalid changeType '{change_types}'.")
            url = body.get("notificationUrl") or ""
            if not url.startswith(("http://", "https://")):
                raise graph_error(400, "InvalidRequest", "notificationUrl must be an http(s) URL.")
            if len(body.get("clientState") or "") > 128:
                raise graph_error(400, "InvalidRequest", "clientState must be at most 128 characters.")
            expiration = self._expiration(body.get("expirationDateTime"))
            application_id = self._token_for(request).client_id
        # Graph proves the receiver wants notifications before it creates anything.
        validation_token = (
            f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        )
        separator = "&" if "?" in url else "?"
        status, content_type, text = http_post(
            f"{url}{separator}{urllib.parse.urlencode({'validationToken': validation_token})}",
            body=b"",
            headers={"Content-Type": "text/plain; charset=utf-8"},
            timeout=10,
        )
        if status != 200 or not content_type.startswith("text/plain") or text != validation_token:
            raise graph_error(
                400,
                "ValidationError",
                "Subscription validation request failed. Notification endpoint must respond with 200 OK "
                "to validation request.",
            )
        with self.lock:
            subscription = _Subscription(
                str(uuid.uuid4()),
                body["resource"],
                user.oid,
                calendar_id,
                change_types,
                url,
                body.get("clientState"),
                expiration,
                application_id,
            )
            self._subscriptions[subscription.id] = subscription
            return Response(201, self._render_subscription(subscription))

    def _subscriptions_list(self, request: Request) -> Response:
        access = self._token_for(request)
        now = utcnow()
        value = [
            self._render_subscription(s)
            for s in self._subscriptions.values()
            if s.application_id == access.client_id and s.expiration > now
        ]
        return Response(200, {"@odata.context": f"{self.graph_base}/$metadata#subscriptions", "value": value})

    def _subscriptions_get(self, request: Request, subscription_id: str) -> Response:
        return Response(200, self._render_subscription(self._subscription(request, subscription_id)))

    def _subscriptions_renew(self, request: Request, subscription_id: str) -> Response:
        subscription = self._subscription(request, subscription_id)
        subscription.expiration = self._expiration(request.json().get("expirationDateTime"))
        return Response(200, self._render_subscription(subscription))

    def _subscriptions_delete(self, request: Request, subscription_id: str) -> Response:
        del self._subscriptions[self._subscription(request, subscription_id).id]
        return Response(204)

    # --- control: what a test (or the user in Outlook) does directly -----------------------------

    def _user(self, email: str) -> _User:
        for user in self._users.values():
            if user.email.lower() == email.lower():
                return user
        user = _User(email, str(uuid.uuid4()), email.split("@")[0].replace(".", " ").title())
        self._users[user.oid] = user
        calendar_id = "AAMkAGI2" + secrets.token_urlsafe(32) + "="
        self._calendars[calendar_id] = _Calendar(calendar_id, user.oid, "Calendar", is_default=True)
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
            self._calendars[calendar_id] = _Calendar(calendar_id, user.oid, name, is_default=False)
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
            body = {"subject": subject, "showAs": show_as, **_control_span(start, end), **fields}
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
            event.props, event.start_at, event.end_at = self._validated(
                _control_span(start, end), event.props
            )
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

    def expire_access_tokens(self) -> None:
        """Expire every access token now; Graph then answers 401 InvalidAuthenticationToken."""
        with self.lock:
            past = utcnow() - dt.timedelta(seconds=1)
            for access in self._access.values():
                access.expires_at = past

    def expire_delta_tokens(self) -> None:
        """Forget every delta and skip token: the next delta round answers 410 SyncStateNotFound."""
        with self.lock:
            self._delta_tokens.clear()
            self._delta_pages.clear()

    def deny_next_consent(self) -> None:
        """The next sign-in is declined: the redirect carries `error=access_denied`."""
        with self.lock:
            self._deny_next = True


def _visible(event: _Event, start: dt.datetime, end: dt.datetime) -> bool:
    """In a calendar view of [start, end): not deleted and overlapping it."""
    return not event.deleted and event.start_at < end and event.end_at > start


def _control_span(start: dt.datetime | dt.date | str, end: dt.datetime | dt.date | str) -> dict[str, Any]:
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
