"""Google Calendar through google-api-python-client, with OAuth by google-auth-oauthlib.

Our events carry the id we choose (base32hex, as Google requires for client ids) and a private
extended property `booking`, so a retried insert answers 409 instead of making a second event, and an
event seen in a sync is recognised as ours.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket

import google.auth.exceptions
import google_auth_httplib2
import httplib2
from django.conf import settings
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

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

SCOPES = ["https://www.googleapis.com/auth/calendar.events", "openid", "email"]
OUR_PROPERTY = "booking"
PAGE_SIZE = 2500
TIMEOUT_S = 20


def _client_config(redirect_uri: str) -> dict:
    return {
        "web": {
            "client_id": settings.GOOGLE_CLIENT_ID,
            "client_secret": settings.GOOGLE_CLIENT_SECRET,
            "auth_uri": settings.GOOGLE_AUTH_URI,
            "token_uri": settings.GOOGLE_TOKEN_URI,
            "redirect_uris": [redirect_uri],
        }
    }


def auth_flow_start(*, redirect_uri: str, state: str) -> dict:
    """Where to send the staff member to grant access; keep the returned dict for auth_flow_finish."""
    flow = Flow.from_client_config(_client_config(redirect_uri), scopes=SCOPES, state=state)
    flow.redirect_uri = redirect_uri
    # offline + consent: Google only returns a refresh token on consent, and a reconnect needs a new one.
    url, _ = flow.authorization_url(access_type="offline", prompt="consent", include_granted_scopes="true")
    return {
        "auth_uri": url,
        "state": state,
        "redirect_uri": redirect_uri,
        "code_verifier": flow.code_verifier,
    }


def auth_flow_finish(*, flow: dict, query: dict) -> dict:
    """Exchange the code Google sent back for tokens; returns the credentials to store."""
    if query.get("error"):
        raise GrantRevoked(f"Google did not grant access: {query['error']}")
    if query.get("state") != flow["state"]:
        raise ProviderError("The answer from Google does not belong to this connection attempt.")
    oauth = Flow.from_client_config(_client_config(flow["redirect_uri"]), scopes=SCOPES, state=flow["state"])
    oauth.redirect_uri = flow["redirect_uri"]
    oauth.code_verifier = flow.get("code_verifier")
    try:
        oauth.fetch_token(code=query.get("code", ""))
    except Exception as error:  # oauthlib raises its own hierarchy; all mean "no grant"
        raise GrantRevoked(f"Google refused the sign-in: {error}") from error
    creds = oauth.credentials
    if not creds.refresh_token:
        raise GrantRevoked("Google granted no offline access; connect again and allow it.")
    account = ""
    id_token = getattr(creds, "id_token", None) or oauth.oauth2session.token.get("id_token")
    if id_token:
        account = _id_token_email(id_token)
    return {"token": creds.token, "refresh_token": creds.refresh_token, "account": account}


def _id_token_email(id_token: str) -> str:
    """The email in an id_token. It came straight from Google's token endpoint over TLS, which is what
    vouches for it here, so the signature is not checked again."""
    try:
        payload = id_token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload)).get("email", "")
    except (IndexError, ValueError):
        return ""


def _translate(error: Exception) -> ProviderError:
    if isinstance(error, HttpError):
        status = error.resp.status
        reason = ""
        try:
            reason = error.error_details[0].get("reason", "") if error.error_details else ""
        except (AttributeError, IndexError, TypeError):
            reason = ""
        message = f"Google answered {status} {reason or error.reason}".strip()
        if status == 410 and reason != "deleted":
            return SyncTokenExpired(message)
        if status == 401:
            return GrantRevoked(message)
        if status == 429 or status >= 500 or reason in ("rateLimitExceeded", "userRateLimitExceeded"):
            retry = error.resp.get("retry-after")
            return ProviderUnavailable(
                message, retry_after=float(retry) if retry and retry.isdigit() else None
            )
        return ProviderError(message)
    if isinstance(error, google.auth.exceptions.RefreshError):
        text = str(error)
        if any(reason in text for reason in ("invalid_grant", "invalid_scope", "unauthorized_client")):
            return GrantRevoked(f"Google no longer accepts this connection: {text}")
        return ProviderUnavailable(f"Google token refresh failed: {text}")
    if isinstance(
        error, (google.auth.exceptions.TransportError, httplib2.HttpLib2Error, OSError, socket.timeout)
    ):
        return ProviderUnavailable(f"Google could not be reached: {error}")
    return ProviderError(str(error))


class GoogleAdapter:
    def __init__(self, *, credentials: dict, calendar_id: str) -> None:
        self.credentials = dict(credentials)
        self.credentials_changed = False
        self.calendar_id = calendar_id or "primary"
        self._creds = Credentials(
            token=credentials.get("token"),
            refresh_token=credentials.get("refresh_token"),
            token_uri=settings.GOOGLE_TOKEN_URI,
            client_id=settings.GOOGLE_CLIENT_ID,
            client_secret=settings.GOOGLE_CLIENT_SECRET,
            # Refresh asks for no scopes, so Google keeps those granted: asking for others is refused.
            scopes=None,
        )
        options = {}
        if settings.GOOGLE_CALENDAR_API_ENDPOINT:
            options["api_endpoint"] = settings.GOOGLE_CALENDAR_API_ENDPOINT
        http = google_auth_httplib2.AuthorizedHttp(self._creds, http=httplib2.Http(timeout=TIMEOUT_S))
        self._service = build("calendar", "v3", http=http, client_options=options, cache_discovery=False)

    def _run(self, request):
        try:
            return request.execute(num_retries=0)
        except Exception as error:
            raise _translate(error) from error
        finally:
            if self._creds.token and self._creds.token != self.credentials.get("token"):
                self.credentials["token"] = self._creds.token
                self.credentials_changed = True

    def account(self) -> str:
        return self.credentials.get("account", "") or self.calendar_id

    # --- inbound ---------------------------------------------------------------------------------

    def changes(self, *, token: str, window_start: dt.datetime, window_end: dt.datetime) -> Changes:
        events = self._service.events()
        if token:
            query = {"syncToken": token, "showDeleted": True, "maxResults": PAGE_SIZE}
        else:
            query = {
                "timeMin": window_start.isoformat(),
                "timeMax": window_end.isoformat(),
                "singleEvents": True,
                "maxResults": PAGE_SIZE,
            }
        result = Changes(full=not token)
        page_token = None
        while True:
            page = self._run(events.list(calendarId=self.calendar_id, pageToken=page_token, **query))
            result.events += [_external(item) for item in page.get("items", [])]
            page_token = page.get("nextPageToken")
            if not page_token:
                result.token = page.get("nextSyncToken", "")
                return result

    # --- outbound --------------------------------------------------------------------------------

    def event_put(self, event: OutboundEvent, *, external_id: str = "") -> str:
        body = {
            "summary": event.summary,
            "description": event.description,
            "location": event.location,
            "start": {"dateTime": event.starts_at.isoformat(), "timeZone": event.time_zone},
            "end": {"dateTime": event.ends_at.isoformat(), "timeZone": event.time_zone},
            "extendedProperties": {"private": {OUR_PROPERTY: event.our_id}},
            "status": "confirmed",  # brings back an event the staff member deleted, when we put it again
        }
        events = self._service.events()
        try:
            self._run(events.insert(calendarId=self.calendar_id, body={"id": event.our_id, **body}))
        except ProviderError as error:
            if "409" not in str(error):
                raise
            # Already there (a retried insert, an update, or deleted and kept by Google): overwrite it.
            self._run(events.update(calendarId=self.calendar_id, eventId=event.our_id, body=body))
        return event.our_id

    def event_delete(self, *, our_id: str, external_id: str = "") -> None:
        try:
            self._run(
                self._service.events().delete(calendarId=self.calendar_id, eventId=external_id or our_id)
            )
        except ProviderError as error:
            if not any(code in str(error) for code in ("404", "410")):
                raise

    # --- push ------------------------------------------------------------------------------------

    def watch(
        self, *, address: str, channel_id: str, token: str, ttl: dt.timedelta, now: dt.datetime
    ) -> PushChannel | None:
        expires = now + ttl
        body = {
            "id": channel_id,
            "type": "web_hook",
            "address": address,
            "token": token,
            "expiration": str(int(expires.timestamp() * 1000)),
        }
        answer = self._run(self._service.events().watch(calendarId=self.calendar_id, body=body))
        expiration = answer.get("expiration")
        return PushChannel(
            id=answer["id"],
            token=token,
            resource_id=answer["resourceId"],
            expires_at=dt.datetime.fromtimestamp(int(expiration) / 1000, dt.UTC) if expiration else expires,
        )

    def unwatch(self, channel: PushChannel) -> None:
        try:
            self._run(
                self._service.channels().stop(body={"id": channel.id, "resourceId": channel.resource_id})
            )
        except ProviderError as error:
            if "404" not in str(error):
                raise


def _when(value: dict) -> tuple[dt.datetime | None, dt.date | None]:
    if "dateTime" in value:
        moment = dt.datetime.fromisoformat(value["dateTime"].replace("Z", "+00:00"))
        return moment.astimezone(dt.UTC), None
    if "date" in value:
        return None, dt.date.fromisoformat(value["date"])
    return None, None


def _external(item: dict) -> ExternalEvent:
    ours = item.get("extendedProperties", {}).get("private", {}).get(OUR_PROPERTY, "")
    if item.get("status") == "cancelled":
        return ExternalEvent(id=item["id"], cancelled=True, our_id=ours or "")
    start, start_date = _when(item.get("start", {}))
    end, end_date = _when(item.get("end", {}))
    return ExternalEvent(
        id=item["id"],
        starts_at=start,
        ends_at=end,
        all_day=start_date is not None,
        start_date=start_date,
        end_date=end_date,
        busy=item.get("transparency", "opaque") != "transparent",
        summary=item.get("summary", "")[:200],
        our_id=ours,
    )
