"""The Microsoft identity + Graph stand-in, driven through msal and requests over its TLS port."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import msal
import pytest

from standins.microsoft import MicrosoftStandIn
from tests.standins.calendar_receiver import Receiver

CLIENT_ID, CLIENT_SECRET = "6731de76-14a6-49ae-97bc-6eba6914391e", "client-secret"
SCOPES = ["Calendars.ReadWrite"]
STAFF = "ana@example.com"
NOON = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
REDIRECT_URI = "http://127.0.0.1:8000/calendars/microsoft/callback"


@pytest.fixture
def microsoft() -> Iterator[MicrosoftStandIn]:
    with MicrosoftStandIn.start() as standin:
        yield standin


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.stop()


def msal_app(microsoft: MicrosoftStandIn, authority: str | None = None) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=CLIENT_SECRET,
        authority=authority or microsoft.authority,
        validate_authority=False,
        http_client=microsoft.session(),
    )


class Graph:
    """requests against the stand-in's Graph with one user's bearer token."""

    def __init__(self, microsoft: MicrosoftStandIn, token: str) -> None:
        self.base = microsoft.graph_base
        self.session = microsoft.session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, **kwargs):
        url = path if path.startswith("https://") else f"{self.base}{path}"
        return self.session.request(method, url, timeout=15, **kwargs)


@pytest.fixture
def graph(microsoft) -> Graph:
    return Graph(microsoft, microsoft.issue_tokens(STAFF, client_id=CLIENT_ID)["access_token"])


def graph_time(moment: datetime) -> dict:
    return {"dateTime": moment.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}


def event_body(start: datetime, minutes: int = 60, **fields) -> dict:
    return {
        "subject": "Booking",
        "start": graph_time(start),
        "end": graph_time(start + timedelta(minutes=minutes)),
    } | fields


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_auth_code_flow_through_msal(microsoft):
    """msal's flow: authorize redirect with code and state, then tokens with id_token and client_info."""
    app = msal_app(microsoft)
    flow = app.initiate_auth_code_flow(
        SCOPES, redirect_uri=REDIRECT_URI, login_hint=STAFF, response_mode="query"
    )

    consent = microsoft.session().get(flow["auth_uri"], allow_redirects=False, timeout=5)

    assert consent.status_code == 302
    location = consent.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    result = app.acquire_token_by_auth_code_flow(
        flow, dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    )
    assert "error" not in result, result
    assert result["refresh_token"] and result["access_token"]
    assert result["id_token_claims"]["preferred_username"] == STAFF
    assert [a["username"] for a in app.get_accounts()] == [STAFF]
    me = Graph(microsoft, result["access_token"])("GET", "/me").json()
    assert me["mail"] == STAFF


def test_form_post_sign_in_posts_the_code_back(microsoft):
    """With response_mode=form_post (msal's recommendation) the page auto-posts code and state."""
    app = msal_app(microsoft)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI, response_mode="form_post")

    page = microsoft.session().get(flow["auth_uri"], timeout=5)

    assert f'action="{REDIRECT_URI}"' in page.text
    posted = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
    assert posted["state"] == flow["state"]
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, posted)


def test_declined_sign_in_returns_access_denied_to_msal(microsoft):
    app = msal_app(microsoft)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI, response_mode="form_post")
    microsoft.deny_next_consent()
    result = app.acquire_token_by_auth_code_flow(flow, microsoft.authorization_response(flow["auth_uri"]))
    assert result["error"] == "access_denied"


def test_refresh_token_rotates_and_a_revoked_user_gets_invalid_grant(microsoft):
    app = msal_app(microsoft)
    tokens = microsoft.issue_tokens(STAFF, client_id=CLIENT_ID)

    refreshed = app.acquire_token_by_refresh_token(tokens["refresh_token"], scopes=SCOPES)

    assert refreshed["access_token"] != tokens["access_token"]
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    microsoft.revoke_refresh_tokens(STAFF)
    refused = app.acquire_token_by_refresh_token(refreshed["refresh_token"], scopes=SCOPES)
    assert refused["error"] == "invalid_grant"
    assert refused["error_codes"] == [50173]
    assert refused["error_description"].startswith("AADSTS50173:")


def test_app_only_token_reaches_users_mailboxes_but_not_me(microsoft):
    microsoft.add_user(STAFF)
    app = msal_app(microsoft, authority=f"{microsoft.url}/{microsoft.tenant_id}")
    result = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    graph = Graph(microsoft, result["access_token"])

    assert graph("GET", f"/users/{STAFF}/calendars").json()["value"][0]["isDefaultCalendar"] is True
    me = graph("GET", "/me/calendars")
    assert (me.status_code, me.json()["error"]["code"]) == (400, "BadRequest")


def test_graph_refuses_missing_and_expired_tokens(microsoft, graph):
    anonymous = microsoft.session().get(f"{microsoft.graph_base}/me/events", timeout=5)
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "InvalidAuthenticationToken")
    microsoft.expire_access_tokens()
    expired = graph("GET", "/me/events")
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]


def test_create_update_delete_an_event(microsoft, graph):
    calendar_id = microsoft.default_calendar_id(STAFF)

    created = graph("POST", f"/me/calendars/{calendar_id}/events", json=event_body(NOON, showAs="busy"))

    assert created.status_code == 201
    event = created.json()
    assert event["start"] == {"dateTime": "2026-11-21T12:00:00.0000000", "timeZone": "UTC"}
    assert (event["showAs"], event["isAllDay"], event["isCancelled"]) == ("busy", False, False)
    berlin = graph(
        "GET", f"/me/events/{event['id']}", headers={"Prefer": 'outlook.timezone="Europe/Berlin"'}
    ).json()
    assert berlin["start"] == {"dateTime": "2026-11-21T13:00:00.0000000", "timeZone": "Europe/Berlin"}

    moved = graph(
        "PATCH", f"/me/events/{event['id']}", json={"start": graph_time(NOON + timedelta(hours=1))}
    ).json()
    assert moved["start"]["dateTime"] == "2026-11-21T13:00:00.0000000"
    assert moved["subject"] == "Booking"
    assert moved["changeKey"] != event["changeKey"]
    assert moved["lastModifiedDateTime"].endswith("Z")

    assert graph("DELETE", f"/me/events/{event['id']}").status_code == 204
    gone = graph("GET", f"/me/events/{event['id']}")
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "ErrorItemNotFound")


def test_unknown_properties_are_refused_like_graph(graph):
    refused = graph("POST", "/me/events", json=event_body(NOON, colour="red"))
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "RequestBodyRead")


def test_all_day_events_must_span_midnights(microsoft, graph):
    day = {"dateTime": "2026-11-23T00:00:00", "timeZone": "UTC"}
    next_day = {"dateTime": "2026-11-24T00:00:00", "timeZone": "UTC"}
    ok = graph("POST", "/me/events", json={"isAllDay": True, "start": day, "end": next_day, "showAs": "free"})
    assert ok.status_code == 201
    bad = graph("POST", "/me/events", json={"isAllDay": True, "start": day, "end": graph_time(NOON)})
    assert bad.status_code == 400


def test_repeated_transaction_id_returns_the_first_event(microsoft, graph):
    body = event_body(NOON, transactionId="booking-42")
    first = graph("POST", "/me/events", json=body).json()
    second = graph("POST", "/me/events", json=body).json()
    assert second["id"] == first["id"]
    assert len(microsoft.events(STAFF)) == 1


def collect(graph: Graph, url: str, *, page_size: int) -> tuple[list[dict], str, int]:
    """Follow nextLinks to the deltaLink; return the items, the deltaLink and the number of pages."""
    items, pages = [], 0
    while True:
        page = graph("GET", url, headers={"Prefer": f"odata.maxpagesize={page_size}"}).json()
        items += page["value"]
        pages += 1
        if "@odata.deltaLink" in page:
            return items, page["@odata.deltaLink"], pages
        url = page["@odata.nextLink"]


def test_delta_pages_then_reports_changes_and_removals(microsoft, graph):
    calendar_id = microsoft.default_calendar_id(STAFF)
    ours = graph("POST", "/me/events", json=event_body(NOON)).json()
    theirs = microsoft.create_event(STAFF, start=NOON + timedelta(hours=2), end=NOON + timedelta(hours=3))
    leaving = microsoft.create_event(STAFF, start=NOON + timedelta(hours=4), end=NOON + timedelta(hours=5))
    microsoft.create_event(STAFF, start=NOON + timedelta(days=30), end=NOON + timedelta(days=30, hours=1))
    window = urllib.parse.urlencode(
        {"startDateTime": "2026-11-20T00:00:00Z", "endDateTime": "2026-11-28T00:00:00Z"}
    )

    items, delta_link, pages = collect(
        graph, f"/me/calendars/{calendar_id}/calendarView/delta?{window}", page_size=2
    )

    assert pages == 2
    assert [i["id"] for i in items] == [ours["id"], theirs["id"], leaving["id"]]
    microsoft.move_event(
        STAFF, leaving["id"], start=NOON + timedelta(days=20), end=NOON + timedelta(days=20, hours=1)
    )
    graph("DELETE", f"/me/events/{ours['id']}")
    graph("PATCH", f"/me/events/{theirs['id']}", json={"subject": "Dentist"})
    added = microsoft.create_event(STAFF, start=date(2026, 11, 25), end=date(2026, 11, 26))

    changes, delta_link, _ = collect(graph, delta_link, page_size=10)

    by_id = {c["id"]: c for c in changes}
    assert set(by_id) == {ours["id"], theirs["id"], leaving["id"], added["id"]}
    assert by_id[ours["id"]]["@removed"] == {"reason": "deleted"}
    assert by_id[leaving["id"]]["@removed"] == {"reason": "deleted"}
    assert by_id[theirs["id"]]["subject"] == "Dentist"
    assert by_id[added["id"]]["isAllDay"] is True
    assert collect(graph, delta_link, page_size=10)[0] == []
    microsoft.expire_delta_tokens()
    stale = graph("GET", delta_link)
    assert (stale.status_code, stale.json()["error"]["code"]) == (410, "SyncStateNotFound")


def subscription_body(receiver: Receiver, calendar_id: str) -> dict:
    return {
        "changeType": "created,updated,deleted",
        "notificationUrl": receiver.url,
        "resource": f"me/calendars/{calendar_id}/events",
        "expirationDateTime": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        "clientState": "secret-per-connection",
    }


def test_subscription_validates_the_endpoint_then_notifies_changes(microsoft, graph, receiver):
    calendar_id = microsoft.default_calendar_id(STAFF)

    created = graph("POST", "/subscriptions", json=subscription_body(receiver, calendar_id))

    assert created.status_code == 201, created.text
    subscription = created.json()
    handshake = receiver.received[0]
    assert handshake.query["validationToken"].startswith("Validation: ")
    event = microsoft.create_event(STAFF, start=NOON, end=NOON + timedelta(hours=1))
    got = receiver.wait_for(lambda got: len(got) == 2)
    notification = json.loads(got[1].body)["value"][0]
    assert notification["subscriptionId"] == subscription["id"]
    assert notification["clientState"] == "secret-per-connection"
    assert notification["changeType"] == "created"
    assert notification["resourceData"]["id"] == event["id"]

    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    renewed = graph("PATCH", f"/subscriptions/{subscription['id']}", json={"expirationDateTime": later})
    assert renewed.json()["expirationDateTime"] > subscription["expirationDateTime"]
    assert graph("DELETE", f"/subscriptions/{subscription['id']}").status_code == 204
    microsoft.delete_event(STAFF, event["id"])
    microsoft.wait_for_deliveries()
    assert len(receiver.received) == 2


def test_subscription_is_refused_when_the_endpoint_does_not_echo(microsoft, graph, receiver):
    receiver.echo_validation = False
    refused = graph(
        "POST", "/subscriptions", json=subscription_body(receiver, microsoft.default_calendar_id(STAFF))
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "ValidationError")
    assert microsoft.subscriptions() == []


def test_subscription_lifetime_is_capped(microsoft, graph, receiver):
    body = subscription_body(receiver, microsoft.default_calendar_id(STAFF))
    body["expirationDateTime"] = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    assert graph("POST", "/subscriptions", json=body).status_code == 400


def test_injected_throttling_carries_retry_after(microsoft, graph):
    microsoft.fail_next(1, status=429, retry_after=7)
    microsoft.fail_next(1, status=503)

    throttled, unavailable, fine = (graph("GET", "/me/events") for _ in range(3))

    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "7")
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert unavailable.status_code == 503
    assert fine.status_code == 200


def test_control_calls_work_over_http(microsoft, graph):
    answer = microsoft.session().post(
        f"{microsoft.url}/_control/create_event",
        json={"email": STAFF, "start": "2026-11-21T12:00:00+00:00", "end": "2026-11-21T13:00:00+00:00"},
        timeout=5,
    )
    assert answer.status_code == 200
    assert [e["id"] for e in graph("GET", "/me/events").json()["value"]] == [answer.json()["result"]["id"]]
