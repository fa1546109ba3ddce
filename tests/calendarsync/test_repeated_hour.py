"""Ana's own calendar on the night the clocks go back: her booking at the second 01:00 (01:00 GMT) is
at 01:00 UTC in CalDAV, Google Calendar and Outlook alike, never at the first 01:00 (00:00 UTC)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import caldav
import pytest

from booking.services import booking_confirm
from calendarsync.models import CalendarConnection
from calendarsync.services import connection_create
from core.outbox.services import outbox_sweep
from core.times import venue_time
from inventory.selectors import appointment_slot_list
from standins.radicale import Radicale, radicale
from tests.booking.clock_changes import (
    first_changes_each_way,
    open_all_day,
    touched_stretch,
    zones_that_change_alike,
)
from tests.booking.helpers import hold_slot, someone
from tests.booking.night_studio import NOW, SECOND_ONE_AM, book_the_second_one_am, night_studio, read_back
from tests.calendarsync.helpers import STAFF, google_connect, microsoft_connect

pytestmark = pytest.mark.django_db

USER, PASSWORD = "ana", "app-password"
ONE_HOUR = (SECOND_ONE_AM, SECOND_ONE_AM + timedelta(hours=1))


@pytest.fixture(scope="module")
def server() -> Iterator[Radicale]:
    with radicale(users={USER: PASSWORD}) as running:
        yield running


def test_the_caldav_event_on_her_phone_is_at_the_second_one_oclock(server):
    place = night_studio()
    phone = caldav.DAVClient(url=server.url, username=USER, password=PASSWORD).principal()
    calendar = phone.make_calendar(name=f"Work {uuid.uuid4().hex[:6]}")
    connection_create(
        resource=place["ana"],
        provider="caldav",
        mode=CalendarConnection.Mode.TWO_WAY,
        calendar_id=str(calendar.url),
        credentials={"url": server.url, "username": USER, "password": PASSWORD},
        account=USER,
        now=NOW,
    )
    book_the_second_one_am(place)
    [event] = calendar.events()  # as Radicale stores it and her phone reads it: by vobject, not by us
    assert read_back(event.data) == ONE_HOUR


def test_the_google_event_is_at_the_second_one_oclock(google):
    place = night_studio()
    google_connect(google, place["ana"], now=NOW)
    book_the_second_one_am(place)
    [event] = google.events(STAFF)
    starts = datetime.fromisoformat(event["start"]["dateTime"].replace("Z", "+00:00"))
    ends = datetime.fromisoformat(event["end"]["dateTime"].replace("Z", "+00:00"))
    assert (starts, ends) == ONE_HOUR


def test_the_outlook_event_is_at_the_second_one_oclock(microsoft):
    place = night_studio()
    microsoft_connect(microsoft, place["ana"], now=NOW)
    book_the_second_one_am(place)
    [event] = microsoft.events(STAFF)  # Graph, as the stand-in, reads a local time that repeats as the first

    def instant(value: dict) -> datetime:
        return datetime.fromisoformat(value["dateTime"][:19]).replace(tzinfo=ZoneInfo(value["timeZone"]))

    assert (instant(event["start"]), instant(event["end"])) == ONE_HOUR


@pytest.mark.parametrize("zone_name", zones_that_change_alike())
def test_booked_for_real_around_a_change_each_way_email_and_caldav_name_the_instant(server, inbox, zone_name):
    """In each kind of zone (one per distinct history of changes in 2026–2030), around its first
    fall-back and first spring-forward, the times on either side of the change and the last quarter
    it repeats (fall-back: the first 01:45 BST, the second 01:00 GMT and the second 01:45 GMT in
    London) are booked for real. Each customer's confirmation names that instant, in words and in the
    invite read back by vobject, and the staff member's CalDAV calendar, read back from Radicale,
    holds each booking at exactly its instants. (Every offered time's invite, in every stretch a change
    touches: tests/booking/test_repeated_hour.py.)"""
    visit = open_all_day(zone_name)
    [room] = visit.requirements.get().candidates.all()
    phone = caldav.DAVClient(url=server.url, username=USER, password=PASSWORD).principal()
    calendar = phone.make_calendar(name=f"Room {uuid.uuid4().hex[:6]}")
    connection_create(
        resource=room,
        provider="caldav",
        mode=CalendarConnection.Mode.TWO_WAY,
        calendar_id=str(calendar.url),
        credentials={"url": server.url, "username": USER, "password": PASSWORD},
        account=USER,
        now=NOW,
    )
    booked = []
    for change in first_changes_each_way(zone_name):
        now = change - timedelta(days=1)
        start, end = touched_stretch(zone_name, change)
        quarter = timedelta(minutes=15)
        wanted = {change - quarter, change, end - 2 * quarter}
        for slot in appointment_slot_list(offering=visit, start=start, end=end, now=now):
            if slot.starts_at in wanted:
                booking = hold_slot(visit, slot.starts_at, who=someone(), now=now)
                booking_confirm(booking=booking, now=now)
                booked.append(booking)
        for _ in range(3):  # what the worker does: the events, then the emails and pushes they queue
            outbox_sweep(now=now + timedelta(seconds=1))
    assert len(booked) >= 3, zone_name

    for booking in booked:
        [email] = [m for m in inbox.to(booking.customer.email) if m["X-Booking-Email"] == "confirmed"]
        [invite] = [p for p in email.iter_attachments() if (p.get_filename() or "").endswith(".ics")]
        assert read_back(invite.get_payload(decode=True)) == (booking.starts_at, booking.ends_at)
        assert venue_time(booking.starts_at, zone_name, "long") in email.get_body(("plain",)).get_content()
    on_her_calendar = sorted(read_back(event.data) for event in calendar.events())
    assert on_her_calendar == sorted((b.starts_at, b.ends_at) for b in booked), zone_name
