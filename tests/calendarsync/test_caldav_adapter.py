"""The CalDAV adapter against a real Radicale server: what the staff member's phone writes, we read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import caldav
import icalendar
import pytest

from calendarsync.providers.base import (
    ExternalEvent,
    GrantRevoked,
    OutboundEvent,
    ProviderUnavailable,
    SyncTokenExpired,
)
from calendarsync.providers.caldav import CalDAVAdapter, calendar_discover
from standins.radicale import Radicale, radicale

STAFF, PASSWORD = "ana", "s3cret"
WINDOW = (datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 9, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def server() -> Iterator[Radicale]:
    with radicale() as running:
        yield running


@pytest.fixture
def phone_calendar(server: Radicale) -> caldav.Calendar:
    """A fresh calendar, as the staff member's phone sees it (the caldav library, not our adapter)."""
    client = caldav.DAVClient(url=server.url, username=STAFF, password=PASSWORD)
    return client.principal().make_calendar(name=f"Work {uuid.uuid4().hex[:6]}")


@pytest.fixture
def adapter(server: Radicale, phone_calendar: caldav.Calendar) -> CalDAVAdapter:
    return CalDAVAdapter(
        credentials={"url": server.url, "username": STAFF, "password": PASSWORD},
        calendar_id=str(phone_calendar.url),
    )


def phone_save(calendar: caldav.Calendar, uid: str, *lines: str) -> str:
    """Save a VEVENT the way a phone would; returns the object's path (the adapter's event id)."""
    body = "\n".join(["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20270101T000000Z", *lines, "END:VEVENT"])
    event = calendar.save_event(f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Phone//EN\n{body}\nEND:VCALENDAR\n")
    return event.url.url_parsed.path


def full_sync(adapter: CalDAVAdapter):
    return adapter.changes(token="", window_start=WINDOW[0], window_end=WINDOW[1])


def by_summary(events: list[ExternalEvent]) -> dict[str, ExternalEvent]:
    return {event.summary: event for event in events}


def booking(our_id: str, starts_at: datetime, ends_at: datetime) -> OutboundEvent:
    return OutboundEvent(
        our_id=our_id,
        summary="Haircut: Bea Lopez",
        description="Booking BK-1042 for Bea Lopez.",
        starts_at=starts_at,
        ends_at=ends_at,
        time_zone="Europe/Paris",
        location="Salon Nord, 3 rue Haute",
    )


# --- connecting ----------------------------------------------------------------------------------


def test_discover_offers_the_accounts_calendars(server: Radicale) -> None:
    """The admin form can list the calendars of an account, by URL and name."""
    client = caldav.DAVClient(url=server.url, username="bruno", password=PASSWORD)
    work = client.principal().make_calendar(name="Work")
    client.principal().make_calendar(name="Rooms")

    found = calendar_discover(url=server.url, username="bruno", password=PASSWORD)

    assert sorted(name for _, name in found) == ["Rooms", "Work"]
    assert (str(work.url), "Work") in found


def test_a_wrong_password_is_refused() -> None:
    """A wrong password is reported as such, both when connecting and when syncing later."""
    with radicale(users={STAFF: PASSWORD}) as locked:
        caldav.DAVClient(url=locked.url, username=STAFF, password=PASSWORD).principal().make_calendar(
            name="Work"
        )
        assert [name for _, name in calendar_discover(url=locked.url, username=STAFF, password=PASSWORD)] == [
            "Work"
        ]

        with pytest.raises(GrantRevoked, match="The server refused the user name or password"):
            calendar_discover(url=locked.url, username=STAFF, password="wrong")
        adapter = CalDAVAdapter(
            credentials={"url": locked.url, "username": STAFF, "password": "wrong"}, calendar_id=""
        )
        with pytest.raises(GrantRevoked):
            full_sync(adapter)


def test_an_unreachable_server_is_unavailable() -> None:
    """A server that is down is a reason to retry later, not to disconnect the calendar."""
    with radicale() as doomed:
        credentials = {"url": doomed.url, "username": STAFF, "password": PASSWORD}
        calendar = (
            caldav.DAVClient(url=doomed.url, username=STAFF, password=PASSWORD).principal().make_calendar()
        )
        adapter = CalDAVAdapter(credentials=credentials, calendar_id=str(calendar.url))
        assert full_sync(adapter).full
        doomed.stop()

        with pytest.raises(ProviderUnavailable):
            full_sync(adapter)
        with pytest.raises(ProviderUnavailable):
            adapter.event_put(
                booking("bk-down", datetime(2027, 3, 2, 9, tzinfo=UTC), datetime(2027, 3, 2, 10, tzinfo=UTC))
            )
        with pytest.raises(ProviderUnavailable):
            calendar_discover(**credentials)


def test_account_is_the_user_name_and_there_is_no_push(adapter: CalDAVAdapter) -> None:
    assert adapter.account() == STAFF
    assert adapter.credentials_changed is False
    assert (
        adapter.watch(
            address="https://example.com/hook",
            channel_id="c",
            token="t",
            ttl=WINDOW[1] - WINDOW[0],
            now=WINDOW[0],
        )
        is None
    )


# --- inbound -------------------------------------------------------------------------------------


def test_a_full_sync_reads_times_in_their_own_time_zones(adapter: CalDAVAdapter, phone_calendar) -> None:
    """Each event blocks the right instant, whatever zone the phone wrote it in."""
    paris = phone_save(
        phone_calendar,
        "paris",
        "SUMMARY:Dentist",
        "DTSTART;TZID=Europe/Paris:20270310T090000",
        "DTEND;TZID=Europe/Paris:20270310T100000",
    )
    phone_save(
        phone_calendar,
        "new-york",
        "SUMMARY:Call with NY",
        "DTSTART;TZID=America/New_York:20270701T090000",
        "DURATION:PT30M",
    )
    phone_save(phone_calendar, "holiday", "SUMMARY:Holiday", "DTSTART;VALUE=DATE:20270312")
    phone_save(
        phone_calendar,
        "trip",
        "SUMMARY:Trip",
        "DTSTART;VALUE=DATE:20270320",
        "DTEND;VALUE=DATE:20270323",
    )
    phone_save(
        phone_calendar,
        "reminder",
        "SUMMARY:Reminder",
        "TRANSP:TRANSPARENT",
        "DTSTART:20270311T120000Z",
        "DTEND:20270311T130000Z",
    )
    phone_save(
        phone_calendar, "floating", "SUMMARY:Floating", "DTSTART:20270313T080000", "DTEND:20270313T090000"
    )
    phone_save(
        phone_calendar, "old", "SUMMARY:Long ago", "DTSTART:20250101T080000Z", "DTEND:20250101T090000Z"
    )

    changes = full_sync(adapter)

    assert changes.full and changes.token and changes.removed == []
    events = by_summary(changes.events)
    assert set(events) == {"Dentist", "Call with NY", "Holiday", "Trip", "Reminder", "Floating"}
    dentist = events["Dentist"]
    assert dentist.id == paris
    assert (dentist.starts_at, dentist.ends_at) == (
        datetime(2027, 3, 10, 8, tzinfo=UTC),
        datetime(2027, 3, 10, 9, tzinfo=UTC),
    )
    assert dentist.busy and not dentist.all_day and dentist.our_id == ""
    call = events["Call with NY"]  # EDT, UTC-4, in July
    assert (call.starts_at, call.ends_at) == (
        datetime(2027, 7, 1, 13, tzinfo=UTC),
        datetime(2027, 7, 1, 13, 30, tzinfo=UTC),
    )
    holiday = events["Holiday"]  # no DTEND: that one day
    assert holiday.all_day and holiday.starts_at is None
    assert (holiday.start_date, holiday.end_date) == (date(2027, 3, 12), date(2027, 3, 13))
    assert (events["Trip"].start_date, events["Trip"].end_date) == (date(2027, 3, 20), date(2027, 3, 23))
    assert events["Reminder"].busy is False
    assert events["Floating"].starts_at == datetime(2027, 3, 13, 8, tzinfo=UTC)


def test_a_weekly_event_blocks_every_week_in_the_window(adapter: CalDAVAdapter, phone_calendar) -> None:
    """A series counts once per occurrence, each under its own id; a cancelled week frees that week."""
    path = phone_save(
        phone_calendar,
        "standup",
        "SUMMARY:Team meeting",
        "DTSTART;TZID=Europe/Paris:20270104T090000",
        "DTEND;TZID=Europe/Paris:20270104T100000",
        "RRULE:FREQ=WEEKLY;COUNT=12",
        "EXDATE;TZID=Europe/Paris:20270308T090000",
    )

    events = full_sync(adapter).events

    # 4 Jan + 11 weeks = last one on 22 Mar; in the window (from 1 Mar): 1, 15, 22 Mar (8 Mar excepted)
    assert sorted(event.starts_at for event in events) == [
        datetime(2027, 3, 1, 8, tzinfo=UTC),
        datetime(2027, 3, 15, 8, tzinfo=UTC),
        datetime(2027, 3, 22, 8, tzinfo=UTC),
    ]
    assert len({event.id for event in events}) == 3
    assert all(event.id.startswith(path + "#") for event in events)


def test_an_incremental_sync_returns_what_the_phone_changed(adapter: CalDAVAdapter, phone_calendar) -> None:
    """After the first sync, only what was added or moved comes back; a deletion is reported by id."""
    phone_save(phone_calendar, "stays", "SUMMARY:Stays", "DTSTART:20270302T080000Z", "DTEND:20270302T090000Z")
    moved = phone_save(
        phone_calendar, "moves", "SUMMARY:Moves", "DTSTART:20270303T080000Z", "DTEND:20270303T090000Z"
    )
    gone = phone_save(
        phone_calendar, "goes", "SUMMARY:Goes", "DTSTART:20270304T080000Z", "DTEND:20270304T090000Z"
    )
    first = full_sync(adapter)
    assert adapter.changes(token=first.token, window_start=WINDOW[0], window_end=WINDOW[1]).events == []

    added = phone_save(
        phone_calendar, "new", "SUMMARY:New", "DTSTART:20270305T080000Z", "DTEND:20270305T090000Z"
    )
    phone_save(phone_calendar, "moves", "SUMMARY:Moves", "DTSTART:20270306T140000Z", "DTEND:20270306T150000Z")
    second = adapter.changes(token=first.token, window_start=WINDOW[0], window_end=WINDOW[1])

    assert not second.full and second.removed == []
    assert {(e.id, e.starts_at) for e in second.events} == {
        (added, datetime(2027, 3, 5, 8, tzinfo=UTC)),
        (moved, datetime(2027, 3, 6, 14, tzinfo=UTC)),
    }
    assert second.token and second.token != first.token

    phone_calendar.get_event_by_uid("goes").delete()
    third = adapter.changes(token=second.token, window_start=WINDOW[0], window_end=WINDOW[1])

    assert third.removed == [gone]
    # A deletion may have been a series, so the whole window comes back with it.
    assert third.full and set(by_summary(third.events)) == {"Stays", "Moves", "New"}


def test_a_stale_sync_token_asks_for_a_full_sync(adapter: CalDAVAdapter) -> None:
    full_sync(adapter)
    with pytest.raises(SyncTokenExpired):
        adapter.changes(
            token="http://radicale.org/ns/sync/0123456789abcdef", window_start=WINDOW[0], window_end=WINDOW[1]
        )


# --- outbound ------------------------------------------------------------------------------------


def test_a_booking_put_twice_is_one_event_that_moves(adapter: CalDAVAdapter, phone_calendar) -> None:
    """A retried push does not duplicate the booking; a later push with new times moves it."""
    nine = datetime(2027, 3, 10, 8, tzinfo=UTC)  # 09:00 in Paris
    first = adapter.event_put(booking("bk-7f3a", nine, nine.replace(hour=9)))
    again = adapter.event_put(booking("bk-7f3a", nine, nine.replace(hour=9)))
    assert again == first
    assert len(phone_calendar.search(event=True)) == 1

    adapter.event_put(booking("bk-7f3a", nine.replace(hour=13), nine.replace(hour=14)))

    [stored] = phone_calendar.search(event=True)
    vevent = icalendar.Calendar.from_ical(stored.get_data()).walk("VEVENT")[0]
    # Written in UTC, one instant whatever the zone's clocks do (core/times.py); the phone shows
    # 14:00–15:00 in Paris.
    assert stored.get_data().count("DTSTART:20270310T130000Z") == 1
    assert vevent.decoded("DTSTART").astimezone(ZoneInfo("Europe/Paris")).hour == 14
    assert str(vevent["LOCATION"]) == "Salon Nord, 3 rue Haute"
    [ours] = full_sync(adapter).events
    assert (ours.id, ours.our_id) == (first, "bk-7f3a")
    assert (ours.starts_at, ours.ends_at) == (nine.replace(hour=13), nine.replace(hour=14))
    assert ours.summary == "Haircut: Bea Lopez"


def test_our_event_deleted_on_the_phone_is_reported_under_the_put_id(
    adapter: CalDAVAdapter, phone_calendar
) -> None:
    """The sync can tell the booking's event was deleted outside: `removed` names it as the put did."""
    start = datetime(2027, 4, 1, 8, tzinfo=UTC)
    put_id = adapter.event_put(booking("bk-1", start, start.replace(hour=9)))
    token = full_sync(adapter).token

    phone_calendar.get_event_by_uid("bk-1").delete()

    assert adapter.changes(token=token, window_start=WINDOW[0], window_end=WINDOW[1]).removed == [put_id]


def test_event_delete_removes_it_and_a_missing_one_is_fine(adapter: CalDAVAdapter, phone_calendar) -> None:
    start = datetime(2027, 4, 2, 8, tzinfo=UTC)
    put_id = adapter.event_put(booking("bk-2", start, start.replace(hour=9)))

    adapter.event_delete(our_id="bk-2", external_id=put_id)
    adapter.event_delete(our_id="bk-2", external_id=put_id)
    adapter.event_delete(our_id="bk-never", external_id="")

    assert phone_calendar.search(event=True) == []
