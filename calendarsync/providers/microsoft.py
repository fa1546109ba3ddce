"""Outlook calendars through Microsoft Graph: tokens by msal, Graph calls by requests.

Our events are created with `transactionId = our_id`: Graph answers a repeated create with the event
the first one made, so a retried put cannot duplicate it, and Graph returns `transactionId` with the
event (also in delta results), so an event seen in a sync is recognised as ours. The same id is kept
in a single-value extended property, which survives where transactionId might not (Graph returns
extended properties only on `$expand`, which delta does not offer, so it is read when present).

Refresh tokens rotate: every refresh stores the new one in `credentials`. The delta link keeps the
window of the full sync it came from; the caller starts a full sync to move the window.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import urllib.parse
import warnings
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msal
import requests
from django.conf import settings

from calendarsync.providers.base import (
    Changes,
    ExternalEvent,
    GrantRevoked,
    OutboundEvent,
    ProviderError,
    ProviderUnavailable,
    PushChannel,
    SyncTokenExpired,
)
from core.times import machine_moment, wall_clock_repeats

# msal adds openid, profile and offline_access itself and refuses them in this list.
SCOPES = ["Calendars.ReadWrite", "User.Read"]
OUR_PROPERTY = "String {8c0f5b4e-3c1d-4b7a-9a0e-6a4f3f1e2d7b} Name bookingOurId"
PAGE_SIZE = 100
TIMEOUT_S = 20
# Graph's limit for Outlook event subscriptions is 10080 minutes; a margin absorbs clock skew.
SUBSCRIPTION_MAX = dt.timedelta(minutes=10080) - dt.timedelta(minutes=15)
# An access token this close to its expiry is renewed before use rather than failing mid-sync.
TOKEN_MARGIN = dt.timedelta(minutes=5)
# Identity-platform answers that only a person signing in again can fix.
_REVOKED = {"invalid_grant", "interaction_required", "consent_required", "login_required", "access_denied"}
_UNAVAILABLE = {"temporarily_unavailable", "server_error"}
# Graph's ways of saying a delta link can no longer be followed.
_SYNC_STATE_CODES = {"syncstatenotfound", "syncstateinvalid", "resyncrequired"}


class _Session(requests.Session):
    """A requests.Session with a default timeout: msal sends its requests without one."""

    def request(self, method, url, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", TIMEOUT_S)
        return super().request(method, url, **kwargs)


def _session() -> requests.Session:
    session = _Session()
    if settings.MICROSOFT_CA_BUNDLE:
        session.verify = settings.MICROSOFT_CA_BUNDLE
        # Otherwise REQUESTS_CA_BUNDLE or proxies from the environment would override `verify`.
        session.trust_env = False
    return session


def _msal_app(session: requests.Session) -> msal.ConfidentialClientApplication:
    """:raises ProviderUnavailable: when the identity platform cannot be reached."""
    try:
        return msal.ConfidentialClientApplication(
            settings.MICROSOFT_CLIENT_ID,
            client_credential=settings.MICROSOFT_CLIENT_SECRET,
            authority=settings.MICROSOFT_AUTHORITY,
            # Authority validation asks Microsoft's discovery service, which knows no stand-in.
            validate_authority=not settings.MICROSOFT_CA_BUNDLE,
            http_client=session,
        )
    except requests.RequestException as error:
        raise ProviderUnavailable(f"Microsoft sign-in could not be reached: {error}") from error
    except ValueError as error:
        raise ProviderError(f"Microsoft sign-in is misconfigured: {error}") from error


def _token_error(result: dict) -> ProviderError:
    error = result.get("error", "")
    description = result.get("error_description") or error
    if error in _REVOKED:
        return GrantRevoked(f"Microsoft no longer grants access: {description}")
    if error in _UNAVAILABLE:
        return ProviderUnavailable(f"Microsoft sign-in is unavailable: {description}")
    # invalid_client (an expired client secret) and the like: our configuration, not the user's grant.
    return ProviderError(f"Microsoft refused the token request: {description}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _keep_tokens(credentials: dict, result: dict) -> None:
    credentials["access_token"] = result["access_token"]
    expires_at = _now() + dt.timedelta(seconds=int(result.get("expires_in") or 0))
    credentials["access_token_expires_at"] = expires_at.isoformat()
    if result.get("refresh_token"):
        credentials["refresh_token"] = result["refresh_token"]


def auth_flow_start(*, redirect_uri: str, login_hint: str = "") -> dict:
    """Where to send the staff member to grant access; keep the returned dict for auth_flow_finish.

    The answer comes back as query parameters on a GET: msal recommends form_post, but that is a
    cross-site POST, on which browsers do not send our SameSite=Lax session cookie, so the flow kept in
    the session would be out of reach.

    :raises ProviderUnavailable: when the identity platform cannot be reached.
    """
    app = _msal_app(_session())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="response_mode='form_post' is recommended")
        try:
            return app.initiate_auth_code_flow(
                SCOPES, redirect_uri=redirect_uri, login_hint=login_hint or None, response_mode="query"
            )
        except requests.RequestException as error:
            raise ProviderUnavailable(f"Microsoft sign-in could not be reached: {error}") from error


def auth_flow_finish(*, flow: dict, query: dict) -> dict:
    """Exchange the code Microsoft sent back for tokens; return the credentials to store.

    The credentials hold `refresh_token`, `access_token`, `access_token_expires_at` (ISO), and the
    account: `account` (the username, usually the email), `name`, `oid`, `tenant_id`.

    :raises GrantRevoked: the person declined, or the code was refused.
    :raises ProviderError: the answer does not belong to this flow.
    :raises ProviderUnavailable: the identity platform cannot be reached.
    """
    app = _msal_app(_session())
    try:
        result = app.acquire_token_by_auth_code_flow(flow, dict(query))
    except ValueError as error:  # msal's check of state (CSRF) and of the answer's shape
        raise ProviderError(f"The answer from Microsoft does not belong to this sign-in: {error}") from error
    except requests.RequestException as error:
        raise ProviderUnavailable(f"Microsoft sign-in could not be reached: {error}") from error
    if "access_token" not in result:
        raise _token_error(result)
    if not result.get("refresh_token"):
        raise GrantRevoked("Microsoft granted no offline access; connect again and allow it.")
    claims = result.get("id_token_claims") or {}
    credentials = {
        "account": claims.get("preferred_username") or claims.get("email") or "",
        "name": claims.get("name", ""),
        "oid": claims.get("oid", ""),
        "tenant_id": claims.get("tid", ""),
    }
    _keep_tokens(credentials, result)
    return credentials


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - _now()).total_seconds())


def _graph_error(response: requests.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200]
    error = (body.get("error") if isinstance(body, dict) else None) or {}
    if not isinstance(error, dict):
        return str(error), ""
    return error.get("code", ""), error.get("message", "")


class MicrosoftAdapter:
    """One Outlook calendar (`calendar_id`, or the default calendar when empty) of a connected account."""

    def __init__(self, *, credentials: dict, calendar_id: str) -> None:
        self.credentials = dict(credentials)
        self.credentials_changed = False
        self.calendar_id = calendar_id
        self.page_size = PAGE_SIZE
        self._graph = settings.MICROSOFT_GRAPH_BASE.rstrip("/")
        self._http = _session()
        self._msal: msal.ConfidentialClientApplication | None = None

    # --- tokens and requests ---------------------------------------------------------------------

    def _access_token(self, *, renew: bool) -> str:
        token = self.credentials.get("access_token")
        expires_at = self.credentials.get("access_token_expires_at")
        if (
            not renew
            and token
            and expires_at
            and dt.datetime.fromisoformat(expires_at) > _now() + TOKEN_MARGIN
        ):
            return token
        refresh_token = self.credentials.get("refresh_token")
        if not refresh_token:
            raise GrantRevoked("No Microsoft refresh token is stored; connect the calendar again.")
        if self._msal is None:
            self._msal = _msal_app(self._http)
        try:
            result = self._msal.acquire_token_by_refresh_token(refresh_token, scopes=SCOPES)
        except requests.RequestException as error:  # msal raises for 5xx and network failures
            raise ProviderUnavailable(f"Microsoft sign-in could not be reached: {error}") from error
        if "access_token" not in result:
            raise _token_error(result)
        _keep_tokens(self.credentials, result)
        self.credentials_changed = True
        return result["access_token"]

    def _request(
        self,
        method: str,
        url: str,
        *,
        allow: tuple[int, ...] = (),
        delta: bool = False,
        prefer: str = "",
        **kwargs,
    ) -> requests.Response:
        """Call Graph with a valid token, renewing it once on 401; answer statuses in `allow` as they are.

        :raises GrantRevoked: the renewed token is refused too, or no token can be had.
        :raises SyncTokenExpired: `delta` is set and Graph no longer knows the delta state.
        :raises ProviderUnavailable: 429, 5xx or no answer.
        :raises ProviderError: any other refusal, with Graph's error code and message.
        """
        # Times in UTC whatever the mailbox's zone, so they parse the same everywhere.
        headers = {"Prefer": ", ".join(filter(None, [prefer, 'outlook.timezone="UTC"']))}
        for renew in (False, True):
            headers["Authorization"] = f"Bearer {self._access_token(renew=renew)}"
            try:
                response = self._http.request(method, url, headers=headers, timeout=TIMEOUT_S, **kwargs)
            except requests.RequestException as error:
                raise ProviderUnavailable(f"Microsoft Graph could not be reached: {error}") from error
            if response.status_code != 401:
                break
        status = response.status_code
        if status < 400 or status in allow:
            return response
        code, message = _graph_error(response)
        text = f"Microsoft Graph answered {status} {code}: {message}".strip()
        if status == 401:
            raise GrantRevoked(text)
        if delta and (status == 410 or code.lower() in _SYNC_STATE_CODES):
            raise SyncTokenExpired(text)
        if status == 429 or status >= 500:
            raise ProviderUnavailable(text, retry_after=_retry_after(response))
        raise ProviderError(text)

    def _calendar_path(self) -> str:
        if not self.calendar_id:
            return f"{self._graph}/me/calendar"
        return f"{self._graph}/me/calendars/{urllib.parse.quote(self.calendar_id, safe='')}"

    def _event_url(self, event_id: str) -> str:
        return f"{self._graph}/me/events/{urllib.parse.quote(event_id, safe='')}"

    def _own_link(self, link: str) -> str:
        # The bearer token goes wherever the link points: only ever to our Graph.
        if not link.startswith(self._graph + "/"):
            raise ProviderError(f"Microsoft Graph sent a link outside {self._graph}: {link[:100]}")
        return link

    def account(self) -> str:
        if not self.credentials.get("account"):
            me = self._request("GET", f"{self._graph}/me").json()
            self.credentials["account"] = me.get("mail") or me.get("userPrincipalName") or ""
            self.credentials_changed = True
        return self.credentials["account"]

    # --- inbound ---------------------------------------------------------------------------------

    def changes(self, *, token: str, window_start: dt.datetime, window_end: dt.datetime) -> Changes:
        if token:
            if not token.startswith(self._graph + "/"):
                raise SyncTokenExpired("The stored delta link is not for this Graph address.")
            url, params = token, None
        else:
            url = f"{self._calendar_path()}/calendarView/delta"
            params = {
                "startDateTime": _graph_instant(window_start),
                "endDateTime": _graph_instant(window_end),
            }
        result = Changes(full=not token)
        while True:
            page = self._request(
                "GET", url, params=params, delta=True, prefer=f"odata.maxpagesize={self.page_size}"
            ).json()
            for item in page.get("value", []):
                if "@removed" in item:
                    result.removed.append(item["id"])
                else:
                    result.events.append(_external(item))
            if next_link := page.get("@odata.nextLink"):
                url, params = self._own_link(next_link), None
                continue
            result.token = self._own_link(page.get("@odata.deltaLink", ""))
            return result

    # --- outbound --------------------------------------------------------------------------------

    def event_put(self, event: OutboundEvent, *, external_id: str = "") -> str:
        body = _event_body(event)
        if external_id:
            answer = self._request("PATCH", self._event_url(external_id), json=body, allow=(404,))
            if answer.status_code != 404:
                return answer.json()["id"]
            # The staff member deleted it in Outlook, but the booking stands: put it back.
        created = self._request(
            "POST",
            f"{self._calendar_path()}/events",
            json=body
            | {
                "transactionId": event.our_id,
                "singleValueExtendedProperties": [{"id": OUR_PROPERTY, "value": event.our_id}],
            },
        ).json()
        if not _shows(created, event):
            # A repeated transactionId answered with the event an earlier put made, as it was then.
            created = self._request("PATCH", self._event_url(created["id"]), json=body).json()
        return created["id"]

    def event_delete(self, *, our_id: str, external_id: str = "") -> None:
        # Graph finds events by its own id only; without one there is nothing of ours to delete.
        if external_id:
            self._request("DELETE", self._event_url(external_id), allow=(404,))

    # --- push ------------------------------------------------------------------------------------

    def watch(
        self, *, address: str, channel_id: str, token: str, ttl: dt.timedelta, now: dt.datetime
    ) -> PushChannel | None:
        """Subscribe `address` to the calendar's changes (Graph names the subscription: `channel_id` is
        unused). Graph first checks that `address` echoes a validation token."""
        expires_at = now + min(ttl, SUBSCRIPTION_MAX)
        # The default calendar: every calendar of the mailbox, which costs a few extra syncs, misses none.
        resource = f"me/calendars/{self.calendar_id}/events" if self.calendar_id else "me/events"
        body = {
            "changeType": "created,updated,deleted",
            "notificationUrl": address,
            "resource": resource,
            "expirationDateTime": _graph_instant(expires_at),
            "clientState": token,
        }
        answer = self._request("POST", f"{self._graph}/subscriptions", json=body).json()
        if answer.get("expirationDateTime"):
            expires_at = _parse_instant(answer["expirationDateTime"])
        return PushChannel(id=answer["id"], token=token, resource_id=answer["id"], expires_at=expires_at)

    def unwatch(self, channel: PushChannel) -> None:
        url = f"{self._graph}/subscriptions/{urllib.parse.quote(channel.id, safe='')}"
        self._request("DELETE", url, allow=(404,))


def _graph_instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_instant(value: str) -> dt.datetime:
    # Python 3.11 reads Graph's seven fractional digits (it drops the last one).
    moment = dt.datetime.fromisoformat(value)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _when(value: dict) -> dt.datetime:
    """A Graph dateTimeTimeZone as an aware UTC datetime (we ask for UTC; other IANA zones are read too)."""
    moment = dt.datetime.fromisoformat(value["dateTime"])
    if moment.tzinfo is None:
        try:
            moment = moment.replace(tzinfo=ZoneInfo(value.get("timeZone") or "UTC"))
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ProviderError(
                f"Microsoft Graph sent an unknown time zone {value.get('timeZone')!r}"
            ) from error
    return moment.astimezone(dt.UTC)


def _our_id(item: dict) -> str:
    if item.get("transactionId"):
        return item["transactionId"]
    for prop in item.get("singleValueExtendedProperties") or []:
        if prop.get("id", "").lower() == OUR_PROPERTY.lower():
            return prop.get("value") or ""
    return ""


def _external(item: dict) -> ExternalEvent:
    common = {
        "id": item["id"],
        # Only "free" takes no time; tentative, out of office and working elsewhere keep it blocked.
        "busy": item.get("showAs", "busy") != "free",
        "cancelled": bool(item.get("isCancelled")),
        "summary": (item.get("subject") or "")[:200],
        "our_id": _our_id(item),
    }
    if item.get("isAllDay"):
        # All-day events float: their dates are midnights in whatever zone was asked for.
        start_date, end_date = (dt.date.fromisoformat(item[k]["dateTime"][:10]) for k in ("start", "end"))
        return ExternalEvent(all_day=True, start_date=start_date, end_date=end_date, **common)
    return ExternalEvent(starts_at=_when(item["start"]), ends_at=_when(item["end"]), **common)


def _event_body(event: OutboundEvent) -> dict:
    zone_name = event.time_zone or "UTC"

    def graph_time(moment: dt.datetime) -> dict:
        # Written in the location's zone, so Outlook keeps the salon's zone with the event; but Graph
        # takes a wall-clock time and reads one that occurs twice as the first, so in the hour the
        # clocks go back it gets UTC (core/times.py), the one way to name the second occurrence.
        if wall_clock_repeats(moment, zone_name):
            moment, zone = machine_moment(moment), "UTC"
        else:
            moment, zone = moment.astimezone(ZoneInfo(zone_name)), zone_name
        return {"dateTime": moment.replace(tzinfo=None).isoformat(timespec="seconds"), "timeZone": zone}

    return {
        "subject": event.summary,
        "body": {"contentType": "text", "content": event.description},
        "start": graph_time(event.starts_at),
        "end": graph_time(event.ends_at),
        "location": {"displayName": event.location},
        "showAs": "busy",
    }


def _shows(item: dict, event: OutboundEvent) -> bool:
    """Whether Graph's event has the booking's subject and times (the body comes back as HTML: skipped)."""
    return (
        item.get("subject") == event.summary
        and _when(item["start"]) == event.starts_at
        and _when(item["end"]) == event.ends_at
        and (item.get("location") or {}).get("displayName", "") == event.location
    )
