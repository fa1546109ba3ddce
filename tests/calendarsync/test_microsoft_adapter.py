"""An Outlook calendar through the Microsoft adapter: a staff member's own appointments come back as busy
time, bookings land in her calendar once, and Graph's failures reach the caller as the four error kinds.
The real msal and requests talk to the local stand-in (standins/microsoft/) over TLS."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from calendarsync.providers.base import (
    ExternalEvent,
    GrantRevoked,
    OutboundEvent,
    ProviderError,
    ProviderUnavailable,
    SyncTokenExpired,
)
from calendarsync.providers.microsoft import MicrosoftAdapter, auth_flow_finish, auth_flow_start
from standins.microsoft import MicrosoftStandIn
from tests.standins.calendar_receiver import Receiver

CLIENT_ID = "0d3c2f7e-5a4b-4d8e-9f10-2b3c4d5e6f70"
STAFF = "ana@example.com"
REDIRECT_URI = "http://127.0.0.1:8000/calendars/microsoft/callback"
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)
WINDOW = {"window_start": MONDAY, "window_end": MONDAY + timedelta(days=7)}


def at(hour: int, day: int = 0) -> datetime:
    return MONDAY + timedelta(days=day, hours=hour)


@pytest.fixture
def microsoft(settings) -> Iterator[MicrosoftStandIn]:
    with MicrosoftStandIn.start(default_email=STAFF) as standin:
        settings.MICROSOFT_CLIENT_ID = CLIENT_ID
        settings.MICROSOFT_CLIENT_SECRET = "client-secret"
        settings.MICROSOFT_AUTHORITY = standin.authority
        settings.MICROSOFT_GRAPH_BASE = standin.graph_base
        settings.MICROSOFT_CA_BUNDLE = standin.ca_cert
        yield standin


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()  # echoes Graph's validationToken as text/plain, records notifications
    yield receiver
    receiver.stop()


def connect(microsoft: MicrosoftStandIn) -> dict:
    """Ana signs in and consents, as the connect view will make her do; the credentials to store."""
    flow = auth_flow_start(redirect_uri=REDIRECT_URI)
    flow = json.loads(json.dumps(flow))  # kept in the Django session between the two requests
    return auth_flow_finish(flow=flow, query=microsoft.authorization_response(flow["auth_uri"]))


@pytest.fixture
def credentials(microsoft) -> dict:
    return connect(microsoft)


@pytest.fixture
def adapter(credentials) -> MicrosoftAdapter:
    return MicrosoftAdapter(credentials=credentials, calendar_id="")


def booking(our_id: str = "bk-42", start: datetime | None = None, **fields) -> OutboundEvent:
    start = start or at(9)
    values = {
        "our_id": our_id,
        "summary": "Haircut: Jo Smith",
        "description": "Booking B-42 for Jo Smith.",
        "starts_at": start,
        "ends_at": start + timedelta(hours=1),
        "time_zone": "Europe/Lisbon",
        "location": "Salon, Rua Augusta 1",
    }
    return OutboundEvent(**(values | fields))


def outlook_times(microsoft: MicrosoftStandIn) -> dict[str, tuple[str, str]]:
    """What Ana sees in Outlook: each event's subject by its UTC start and end (as Graph renders them)."""
    return {
        e["id"]: (e["subject"], e["start"]["dateTime"][:16], e["end"]["dateTime"][:16])
        for e in microsoft.events(STAFF)
    }


# --- connecting ---------------------------------------------------------------------------------------


def test_signing_in_gives_credentials_that_read_the_calendar(microsoft):
    """The sign-in round trip yields a refresh token and Ana's address, and they open her calendar."""
    flow = auth_flow_start(redirect_uri=REDIRECT_URI)
    assert flow["auth_uri"].startswith(f"{microsoft.authority}/oauth2/v2.0/authorize?")

    credentials = auth_flow_finish(flow=flow, query=microsoft.authorization_response(flow["auth_uri"]))

    assert credentials["account"] == STAFF
    assert credentials["refresh_token"]
    microsoft.create_event(STAFF, start=at(9), end=at(10), subject="Dentist")
    adapter = MicrosoftAdapter(credentials=credentials, calendar_id="")
    assert adapter.account() == STAFF
    assert [e.summary for e in adapter.changes(token="", **WINDOW).events] == ["Dentist"]


def test_declining_consent_is_a_revoked_grant(microsoft):
    flow = auth_flow_start(redirect_uri=REDIRECT_URI)
    microsoft.deny_next_consent()
    with pytest.raises(GrantRevoked, match="declined"):
        auth_flow_finish(flow=flow, query=microsoft.authorization_response(flow["auth_uri"]))


def test_an_answer_to_another_sign_in_is_refused(microsoft):
    """A code from someone else's sign-in (state mismatch) never connects this calendar."""
    mine, theirs = auth_flow_start(redirect_uri=REDIRECT_URI), auth_flow_start(redirect_uri=REDIRECT_URI)
    with pytest.raises(ProviderError, match="does not belong"):
        auth_flow_finish(flow=mine, query=microsoft.authorization_response(theirs["auth_uri"]))


# --- inbound: busy time -------------------------------------------------------------------------------


def test_full_sync_maps_busy_free_and_all_day_events(microsoft, adapter):
    dentist = microsoft.create_event(STAFF, start=at(9), end=at(10, day=0) + timedelta(minutes=30))
    lunch = microsoft.create_event(STAFF, start=at(12), end=at(13), subject="Lunch?", show_as="free")
    holiday = microsoft.create_event(STAFF, start=date(2026, 11, 25), end=date(2026, 11, 27), subject="Off")
    microsoft.create_event(STAFF, start=at(9, day=30), end=at(10, day=30), subject="Next month")
    other = microsoft.add_calendar(STAFF, name="Birthdays")
    microsoft.create_event(STAFF, start=at(15), end=at(16), calendar_id=other, subject="Elsewhere")
    adapter.page_size = 2  # several pages, as a busy calendar would have

    changes = adapter.changes(token="", **WINDOW)

    assert changes.full and changes.token and changes.removed == []
    assert {e.id: e for e in changes.events} == {
        dentist["id"]: ExternalEvent(
            id=dentist["id"], starts_at=at(9), ends_at=at(10, day=0) + timedelta(minutes=30), summary="Busy"
        ),
        lunch["id"]: ExternalEvent(
            id=lunch["id"], starts_at=at(12), ends_at=at(13), busy=False, summary="Lunch?"
        ),
        holiday["id"]: ExternalEvent(
            id=holiday["id"],
            all_day=True,
            start_date=date(2026, 11, 25),
            end_date=date(2026, 11, 27),
            summary="Off",
        ),
    }


def test_a_chosen_calendar_is_the_only_one_read_and_written(microsoft, credentials):
    other = microsoft.add_calendar(STAFF, name="Salon")
    microsoft.create_event(STAFF, start=at(9), end=at(10), subject="Personal")
    microsoft.create_event(STAFF, start=at(11), end=at(12), subject="Salon shift", calendar_id=other)
    adapter = MicrosoftAdapter(credentials=credentials, calendar_id=other)

    assert [e.summary for e in adapter.changes(token="", **WINDOW).events] == ["Salon shift"]
    adapter.event_put(booking())
    assert sorted(e["subject"] for e in microsoft.events(STAFF, calendar_id=other)) == [
        "Haircut: Jo Smith",
        "Salon shift",
    ]
    assert [e["subject"] for e in microsoft.events(STAFF)] == ["Personal"]


def test_incremental_sync_returns_exactly_what_the_staff_member_changed(microsoft, adapter):
    kept = microsoft.create_event(STAFF, start=at(8), end=at(9), subject="Standing meeting")
    moved = microsoft.create_event(STAFF, start=at(9), end=at(10), subject="Dentist")
    deleted = microsoft.create_event(STAFF, start=at(11), end=at(12), subject="Gym")
    leaving = microsoft.create_event(STAFF, start=at(14), end=at(15), subject="Call")
    first = adapter.changes(token="", **WINDOW)
    assert {e.id for e in first.events} == {kept["id"], moved["id"], deleted["id"], leaving["id"]}

    microsoft.move_event(STAFF, moved["id"], start=at(16, day=1), end=at(17, day=1))
    microsoft.delete_event(STAFF, deleted["id"])
    microsoft.move_event(STAFF, leaving["id"], start=at(9, day=40), end=at(10, day=40))
    added = microsoft.create_event(STAFF, start=at(10, day=2), end=at(11, day=2), subject="School run")
    changes = adapter.changes(token=first.token, **WINDOW)

    assert not changes.full
    assert sorted(changes.removed) == sorted([deleted["id"], leaving["id"]])
    assert {e.id: (e.starts_at, e.ends_at) for e in changes.events} == {
        moved["id"]: (at(16, day=1), at(17, day=1)),
        added["id"]: (at(10, day=2), at(11, day=2)),
    }
    nothing = adapter.changes(token=changes.token, **WINDOW)
    assert (nothing.events, nothing.removed) == ([], [])


def test_an_expired_delta_link_asks_for_a_full_sync_which_works(microsoft, adapter):
    microsoft.create_event(STAFF, start=at(9), end=at(10), subject="Dentist")
    token = adapter.changes(token="", **WINDOW).token
    microsoft.expire_delta_tokens()

    with pytest.raises(SyncTokenExpired):
        adapter.changes(token=token, **WINDOW)

    again = adapter.changes(token="", **WINDOW)
    assert again.full and [e.summary for e in again.events] == ["Dentist"]
    assert adapter.changes(token=again.token, **WINDOW).events == []


# --- outbound: bookings in the calendar ---------------------------------------------------------------


def test_a_retried_put_creates_the_booking_once_and_sync_knows_it_is_ours(microsoft, adapter):
    first = adapter.event_put(booking())
    second = adapter.event_put(booking())  # the worker died before storing the id, and retried

    assert second == first
    assert outlook_times(microsoft) == {first: ("Haircut: Jo Smith", "2026-11-23T09:00", "2026-11-23T10:00")}
    [seen] = adapter.changes(token="", **WINDOW).events
    assert (seen.id, seen.our_id, seen.starts_at, seen.busy) == (first, "bk-42", at(9), True)
    # Written in the location's zone, so Outlook shows the salon's local time.
    [stored] = microsoft.events(STAFF)
    assert stored["originalStartTimeZone"] == "Europe/Lisbon"


def test_a_retried_put_after_a_reschedule_moves_the_first_event(microsoft, adapter):
    first = adapter.event_put(booking())
    again = adapter.event_put(booking(start=at(14)))  # same booking, new time, id never stored

    assert again == first
    assert outlook_times(microsoft) == {first: ("Haircut: Jo Smith", "2026-11-23T14:00", "2026-11-23T15:00")}


def test_a_put_with_the_event_id_moves_the_booking(microsoft, adapter):
    event_id = adapter.event_put(booking())

    moved = adapter.event_put(booking(start=at(11, day=1), summary="Colour: Jo Smith"), external_id=event_id)

    assert moved == event_id
    assert outlook_times(microsoft) == {
        event_id: ("Colour: Jo Smith", "2026-11-24T11:00", "2026-11-24T12:00")
    }


def test_a_booking_deleted_in_outlook_is_put_back(microsoft, adapter):
    event_id = adapter.event_put(booking())
    microsoft.delete_event(STAFF, event_id)

    again = adapter.event_put(booking(), external_id=event_id)

    assert again != event_id
    assert outlook_times(microsoft) == {again: ("Haircut: Jo Smith", "2026-11-23T09:00", "2026-11-23T10:00")}


def test_deleting_a_booking_removes_it_and_a_missing_one_is_fine(microsoft, adapter):
    event_id = adapter.event_put(booking())

    adapter.event_delete(our_id="bk-42", external_id=event_id)
    adapter.event_delete(our_id="bk-42", external_id=event_id)  # already gone: no error

    assert microsoft.events(STAFF) == []


# --- tokens and failures ------------------------------------------------------------------------------


def test_an_expired_access_token_is_renewed_and_the_rotated_refresh_token_kept(microsoft, credentials):
    microsoft.create_event(STAFF, start=at(9), end=at(10), subject="Dentist")
    adapter = MicrosoftAdapter(credentials=credentials, calendar_id="")
    microsoft.expire_access_tokens()  # Graph now answers 401 to the token we hold

    changes = adapter.changes(token="", **WINDOW)

    assert [e.summary for e in changes.events] == ["Dentist"]
    assert adapter.credentials_changed
    assert adapter.credentials["refresh_token"] != credentials["refresh_token"]
    assert adapter.credentials["access_token"] != credentials["access_token"]
    # What the caller stores works next time, without another refresh.
    later = MicrosoftAdapter(credentials=adapter.credentials, calendar_id="")
    assert [e.summary for e in later.changes(token="", **WINDOW).events] == ["Dentist"]
    assert not later.credentials_changed


def test_a_revoked_grant_is_reported_once_the_access_token_expires(microsoft, adapter):
    microsoft.revoke_refresh_tokens(STAFF)
    adapter.changes(token="", **WINDOW)  # the access token already issued still works, as with Microsoft
    microsoft.expire_access_tokens()

    with pytest.raises(GrantRevoked, match="AADSTS50173"):
        adapter.changes(token="", **WINDOW)


@pytest.mark.parametrize(("status", "retry_after"), [(429, 7.0), (503, 7.0), (500, None)])
def test_throttling_and_outages_are_temporary(microsoft, adapter, status, retry_after):
    microsoft.fail_next(1, status=status, retry_after=7)

    with pytest.raises(ProviderUnavailable) as caught:
        adapter.event_put(booking())

    assert caught.value.retry_after == retry_after
    assert microsoft.events(STAFF) == []
    adapter.event_put(booking())  # the retry later goes through
    assert len(microsoft.events(STAFF)) == 1


def test_an_unreachable_graph_is_temporary(settings, credentials):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        settings.MICROSOFT_GRAPH_BASE = f"https://127.0.0.1:{probe.getsockname()[1]}/v1.0"
    adapter = MicrosoftAdapter(credentials=credentials, calendar_id="")

    with pytest.raises(ProviderUnavailable, match="could not be reached"):
        adapter.changes(token="", **WINDOW)


def test_a_calendar_that_no_longer_exists_is_a_provider_error(credentials):
    adapter = MicrosoftAdapter(credentials=credentials, calendar_id="AAMkAGI2-removed=")

    with pytest.raises(ProviderError, match="404 ErrorItemNotFound") as caught:
        adapter.changes(token="", **WINDOW)

    assert type(caught.value) is ProviderError  # not retried, not a reconnect


# --- push ---------------------------------------------------------------------------------------------


def test_watch_subscribes_and_changes_reach_us_with_our_secret_until_unwatched(microsoft, adapter, receiver):
    now = datetime.now(UTC)  # the stand-in checks the expiry against its clock, which is this one
    channel = adapter.watch(
        address=receiver.url, channel_id="calendar-1", token="s3cret", ttl=timedelta(days=7), now=now
    )

    [subscription] = microsoft.subscriptions()
    assert (subscription["id"], subscription["clientState"]) == (channel.id, "s3cret")
    assert (channel.resource_id, channel.token) == (channel.id, "s3cret")
    assert channel.expires_at <= now + timedelta(minutes=10080)
    event = microsoft.create_event(STAFF, start=at(9), end=at(10))
    got = receiver.wait_for(lambda got: len(got) == 2)  # the validation handshake, then the change
    notification = json.loads(got[1].body)["value"][0]
    assert (notification["subscriptionId"], notification["clientState"]) == (channel.id, "s3cret")
    assert notification["resourceData"]["id"] == event["id"]

    adapter.unwatch(channel)
    adapter.unwatch(channel)  # already gone: no error

    assert microsoft.subscriptions() == []
    microsoft.delete_event(STAFF, event["id"])
    microsoft.wait_for_deliveries()
    assert len(receiver.received) == 2
