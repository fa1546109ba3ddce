"""Ana's own calendar on the night the clocks go back: her booking at the second 01:00 (01:00 GMT) is
at 01:00 UTC in CalDAV, Google Calendar and Outlook alike, never at the first 01:00 (00:00 UTC)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import caldav
import pytest

from calendarsync.models import CalendarConnection
from calendarsync.services import connection_create
from config.standins.radicale import Radicale, radicale
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
