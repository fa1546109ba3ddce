"""The Google Calendar stand-in, driven through google-api-python-client, google-auth and oauthlib."""

from __future__ import annotations

import base64
import secrets
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from oauthlib.oauth2.rfc6749.errors import InvalidGrantError

from standins.google_calendar import CALENDAR_SCOPE, GoogleCalendarStandIn
from tests.standins.calendar_receiver import Receiver

CLIENT_ID, CLIENT_SECRET = "booking-client.apps.googleusercontent.com", "client-secret"
STAFF = "ana@example.com"
NOON = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def google() -> Iterator[GoogleCalendarStandIn]:
    with GoogleCalendarStandIn.start() as standin:
        yield standin


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.stop()


def credentials(google: GoogleCalendarStandIn, email: str = STAFF) -> Credentials:
    tokens = google.issue_tokens(email, client_id=CLIENT_ID)
    return Credentials(
        tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        token_uri=google.token_uri,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scopes=[CALENDAR_SCOPE],
    )


def calendar_service(google: GoogleCalendarStandIn, creds: Credentials):
    # static_discovery=True reads the discovery document shipped in the wheel: no network.
    return build(
        "calendar",
        "v3",
        credentials=creds,
        client_options={"api_endpoint": google.api_endpoint},
        static_discovery=True,
        cache_discovery=False,
    )


@pytest.fixture
def service(google):
    return calendar_service(google, credentials(google))


def our_id() -> str:
    return "bk" + base64.b32hexencode(secrets.token_bytes(10)).decode().lower().rstrip("=")


def timed(start: datetime, minutes: int = 60) -> dict:
    return {
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": (start + timedelta(minutes=minutes)).isoformat()},
    }


def reason(error: HttpError) -> str:
    return error.error_details[0]["reason"]


def test_code_flow_grants_offline_tokens_that_reach_the_api(google, monkeypatch):
    """The browser consent redirects back with code and state; the code buys refresh + access tokens."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # oauthlib wants https token endpoints
    flow = Flow.from_client_config(
        {
            "web": {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "auth_uri": google.auth_uri,
                "token_uri": google.token_uri,
            }
        },
        scopes=[CALENDAR_SCOPE],
        redirect_uri="http://127.0.0.1:8000/calendars/google/callback",
    )
    url, state = flow.authorization_url(access_type="offline", prompt="consent", login_hint=STAFF)

    consent = requests.get(url, allow_redirects=False, timeout=5)

    assert consent.status_code == 302
    location = consent.headers["Location"]
    assert location.startswith("http://127.0.0.1:8000/calendars/google/callback?")
    answer = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert answer["state"] == state
    flow.fetch_token(code=answer["code"])  # PKCE verifier checked by the stand-in
    creds = flow.credentials
    assert creds.refresh_token and creds.token
    primary = calendar_service(google, creds).calendars().get(calendarId="primary").execute()
    assert primary["id"] == STAFF
    with pytest.raises(InvalidGrantError):  # a code is good for one exchange
        flow.fetch_token(code=answer["code"])


def test_declined_consent_redirects_with_access_denied(google):
    google.deny_next_consent()
    query = urllib.parse.urlencode(
        {"client_id": CLIENT_ID, "redirect_uri": "http://127.0.0.1/cb", "response_type": "code"}
        | {"scope": CALENDAR_SCOPE, "state": "s1"}
    )
    consent = requests.get(f"{google.auth_uri}?{query}", allow_redirects=False, timeout=5)
    assert consent.headers["Location"] == "http://127.0.0.1/cb?error=access_denied&state=s1"


def test_expired_access_token_is_refreshed_and_a_revoked_grant_answers_invalid_grant(google):
    creds = credentials(google)
    service = calendar_service(google, creds)
    first_token = creds.token
    google.expire_access_tokens()

    service.events().list(calendarId="primary").execute()  # 401, refresh, retry: invisible to the caller

    assert creds.token != first_token
    google.revoke_refresh_token(creds.refresh_token)
    with pytest.raises(RefreshError) as refused:
        service.events().list(calendarId="primary").execute()
    assert "invalid_grant" in str(refused.value)
    assert "Token has been expired or revoked." in str(refused.value)


def test_requests_without_a_valid_token_answer_401(google):
    missing = requests.get(f"{google.api_endpoint}calendars/primary/events", timeout=5)
    wrong = requests.get(
        f"{google.api_endpoint}calendars/primary/events", headers={"Authorization": "Bearer nope"}, timeout=5
    )
    assert (missing.status_code, missing.json()["error"]["errors"][0]["reason"]) == (401, "required")
    assert (wrong.status_code, wrong.json()["error"]["errors"][0]["reason"]) == (401, "authError")


def test_insert_keeps_our_id_and_refuses_it_twice_even_after_deletion(service):
    event_id = our_id()
    body = {"id": event_id, "summary": "Booking #1", **timed(NOON)}

    created = service.events().insert(calendarId="primary", body=body).execute()

    assert created["id"] == event_id
    assert created["status"] == "confirmed"
    assert created["start"] == {"dateTime": "2026-11-21T12:00:00Z"}
    with pytest.raises(HttpError) as duplicate:
        service.events().insert(calendarId="primary", body=body).execute()
    assert (duplicate.value.status_code, reason(duplicate.value)) == (409, "duplicate")
    service.events().delete(calendarId="primary", eventId=event_id).execute()
    with pytest.raises(HttpError) as again:
        service.events().insert(calendarId="primary", body=body).execute()
    assert again.value.status_code == 409
    with pytest.raises(HttpError) as gone:
        service.events().delete(calendarId="primary", eventId=event_id).execute()
    assert (gone.value.status_code, reason(gone.value)) == (410, "deleted")
    assert service.events().get(calendarId="primary", eventId=event_id).execute()["status"] == "cancelled"


def test_ids_outside_base32hex_are_refused(service):
    with pytest.raises(HttpError) as refused:
        service.events().insert(calendarId="primary", body={"id": "Booking_1", **timed(NOON)}).execute()
    assert (refused.value.status_code, reason(refused.value)) == (400, "invalid")


def test_patch_merges_and_times_follow_the_event_zone(service):
    event_id = our_id()
    body = {
        "id": event_id,
        "summary": "Booking",
        "start": {"dateTime": "2026-11-21T12:00:00Z", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-11-21T13:00:00Z", "timeZone": "Europe/Berlin"},
        "extendedProperties": {"private": {"booking": "1"}},
    }
    created = service.events().insert(calendarId="primary", body=body).execute()
    assert created["start"] == {"dateTime": "2026-11-21T13:00:00+01:00", "timeZone": "Europe/Berlin"}

    patched = (
        service.events()
        .patch(
            calendarId="primary",
            eventId=event_id,
            body={"transparency": "transparent", "extendedProperties": {"private": {"resource": "7"}}},
        )
        .execute()
    )

    assert patched["summary"] == "Booking"
    assert patched["transparency"] == "transparent"
    assert patched["extendedProperties"]["private"] == {"booking": "1", "resource": "7"}
    assert patched["etag"] != created["etag"]
    found = service.events().list(calendarId="primary", privateExtendedProperty="booking=1").execute()
    assert [e["id"] for e in found["items"]] == [event_id]


def test_all_day_events_and_empty_ranges(service):
    all_day = {"start": {"date": "2026-11-23"}, "end": {"date": "2026-11-24"}}
    created = service.events().insert(calendarId="primary", body=all_day).execute()
    assert created["start"] == {"date": "2026-11-23"}
    with pytest.raises(HttpError) as empty:
        service.events().insert(calendarId="primary", body=timed(NOON, minutes=0)).execute()
    assert reason(empty.value) == "timeRangeEmpty"


def test_incremental_sync_reports_changes_and_deletions(google, service):
    ours = service.events().insert(calendarId="primary", body={"id": our_id(), **timed(NOON)}).execute()
    theirs = google.create_event(STAFF, start=NOON + timedelta(hours=2), end=NOON + timedelta(hours=3))
    window = {
        "calendarId": "primary",
        "timeMin": (NOON - timedelta(days=1)).isoformat(),
        "singleEvents": True,
    }
    pages, token = [], None
    request = service.events().list(maxResults=1, **window)
    while request is not None:
        page = request.execute()
        pages.append([e["id"] for e in page["items"]])
        token = page.get("nextSyncToken", token)
        request = service.events().list_next(request, page)
    assert pages == [[ours["id"]], [theirs["id"]]]

    google.move_event(STAFF, theirs["id"], start=NOON + timedelta(hours=4), end=NOON + timedelta(hours=5))
    service.events().delete(calendarId="primary", eventId=ours["id"]).execute()
    added = google.create_event(
        STAFF, start=date(2026, 11, 25), end=date(2026, 11, 26), transparency="transparent"
    )
    changes = service.events().list(calendarId="primary", syncToken=token).execute()

    by_id = {e["id"]: e for e in changes["items"]}
    assert set(by_id) == {ours["id"], theirs["id"], added["id"]}
    assert by_id[ours["id"]]["status"] == "cancelled"
    assert by_id[theirs["id"]]["start"]["dateTime"] == "2026-11-21T16:00:00Z"
    quiet = service.events().list(calendarId="primary", syncToken=changes["nextSyncToken"]).execute()
    assert quiet["items"] == []
    assert "nextSyncToken" in quiet


def test_sync_token_refuses_window_parameters_and_expires_with_410(google, service):
    token = service.events().list(calendarId="primary").execute()["nextSyncToken"]
    with pytest.raises(HttpError) as mixed:
        service.events().list(calendarId="primary", syncToken=token, timeMin=NOON.isoformat()).execute()
    assert mixed.value.status_code == 400

    google.expire_sync_tokens()

    with pytest.raises(HttpError) as stale:
        service.events().list(calendarId="primary", syncToken=token).execute()
    assert (stale.value.status_code, reason(stale.value)) == (410, "fullSyncRequired")


def test_watch_pushes_sync_then_exists_until_the_channel_stops(google, service, receiver):
    channel = (
        service.events()
        .watch(
            calendarId="primary",
            body={"id": "channel-1", "type": "web_hook", "address": receiver.url, "token": "resource=7"},
        )
        .execute()
    )
    assert channel["resourceId"] and int(channel["expiration"]) > 0

    google.create_event(STAFF, start=NOON, end=NOON + timedelta(hours=1))
    pushed = receiver.wait_for(lambda got: len(got) == 2)

    headers = [p.headers for p in pushed]
    assert [h["X-Goog-Resource-State"] for h in headers] == ["sync", "exists"]
    assert [h["X-Goog-Message-Number"] for h in headers] == ["1", "2"]
    assert {h["X-Goog-Channel-ID"] for h in headers} == {"channel-1"}
    assert {h["X-Goog-Channel-Token"] for h in headers} == {"resource=7"}
    assert {h["X-Goog-Resource-ID"] for h in headers} == {channel["resourceId"]}
    assert pushed[1].body == b""
    with pytest.raises(HttpError) as duplicate:
        service.events().watch(
            calendarId="primary", body={"id": "channel-1", "type": "web_hook", "address": receiver.url}
        ).execute()
    assert reason(duplicate.value) == "channelIdNotUnique"

    service.channels().stop(body={"id": "channel-1", "resourceId": channel["resourceId"]}).execute()
    google.create_event(STAFF, start=NOON, end=NOON + timedelta(hours=1))

    google.wait_for_deliveries()
    assert len(receiver.received) == 2
    with pytest.raises(HttpError) as unknown:
        service.channels().stop(body={"id": "channel-1", "resourceId": channel["resourceId"]}).execute()
    assert unknown.value.status_code == 404


def test_unreachable_push_address_is_ignored(google, service):
    service.events().watch(
        calendarId="primary", body={"id": "c2", "type": "web_hook", "address": "http://127.0.0.1:9/nowhere"}
    ).execute()
    google.create_event(STAFF, start=NOON, end=NOON + timedelta(hours=1))
    assert [d.status for d in google.wait_for_deliveries()] == [None, None]


def test_freebusy_merges_opaque_events_and_skips_transparent_ones(google, service):
    google.create_event(STAFF, start=NOON, end=NOON + timedelta(hours=1))
    google.create_event(STAFF, start=NOON + timedelta(minutes=30), end=NOON + timedelta(hours=2))
    google.create_event(
        STAFF, start=NOON + timedelta(hours=3), end=NOON + timedelta(hours=4), transparency="transparent"
    )

    answer = (
        service.freebusy()
        .query(
            body={
                "timeMin": (NOON - timedelta(hours=1)).isoformat(),
                "timeMax": (NOON + timedelta(hours=1, minutes=30)).isoformat(),
                "items": [{"id": "primary"}, {"id": "someone-else@example.com"}],
            }
        )
        .execute()
    )

    assert answer["calendars"]["primary"]["busy"] == [
        {"start": "2026-11-21T12:00:00Z", "end": "2026-11-21T13:30:00Z"}
    ]
    assert answer["calendars"]["someone-else@example.com"]["errors"][0]["reason"] == "notFound"


def test_injected_429_and_503_surface_as_retryable_http_errors(google, service):
    google.fail_next(1, status=429)
    with pytest.raises(HttpError) as limited:
        service.events().list(calendarId="primary").execute()
    assert (limited.value.status_code, reason(limited.value)) == (429, "rateLimitExceeded")

    google.fail_next(2, status=503)
    request = service.events().list(calendarId="primary")
    request._sleep = lambda seconds: None  # the client's backoff, skipped to keep the test fast

    assert request.execute(num_retries=2)["items"] == []


def test_control_calls_work_over_http_for_other_processes(google, service):
    answer = requests.post(
        f"{google.url}/_control/create_event",
        json={"calendar_id": STAFF, "start": "2026-11-21T12:00:00+00:00", "end": "2026-11-21T13:00:00+00:00"},
        timeout=5,
    )
    assert answer.status_code == 200
    listed = service.events().list(calendarId="primary").execute()["items"]
    assert [e["id"] for e in listed] == [answer.json()["result"]["id"]]
    requests.post(f"{google.url}/_control/reset", json={}, timeout=5)
    assert google.events(STAFF) == []
