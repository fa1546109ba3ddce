"""The hour the clocks go back: a booking at the second 01:00 is at that instant in its invite.

London, Sunday 31 October 2027: at 02:00 BST the clocks go back to 01:00 GMT, so the wall clock shows
01:00–02:00 twice. Ana works 00:00–05:00; Zoé books the second 01:00 (01:00 GMT = 01:00 UTC). RFC 5545
reads a local "01:00" with TZID=Europe/London on that day as the *first* 01:00 (00:00 UTC), so the
invite must not say it that way. It is read back by a second parser (vobject), not by the icalendar
library that wrote it. (Ana's own calendars: tests/calendarsync/test_repeated_hour.py.)
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from functools import cache

import icalendar
import pytest
import time_machine

from booking.selectors import booking_manage_token
from core.times import machine_moment, utc_offset, venue_time, zone_abbreviation
from tests.booking.night_studio import (
    NOW,
    SECOND_ONE_AM,
    book_the_second_one_am,
    night_studio,
    read_back,
)

pytestmark = pytest.mark.django_db


def test_the_invite_in_the_confirmation_email_is_at_the_second_one_oclock(inbox):
    booking = book_the_second_one_am(night_studio())
    [email] = [m for m in inbox.to(booking.customer.email) if m["X-Booking-Email"] == "confirmed"]
    [invite] = [p for p in email.iter_attachments() if (p.get_filename() or "").endswith(".ics")]
    ics = invite.get_payload(decode=True)
    assert (
        read_back(ics)
        == (SECOND_ONE_AM, SECOND_ONE_AM + timedelta(hours=1))
        == (
            booking.starts_at,
            booking.ends_at,
        )
    )
    assert b"DTSTART:20271031T010000Z" in ics  # not DTSTART;TZID=Europe/London:20271031T010000


# --- every zone's changes of clock, 2026–2030 ---------------------------------------------------------


@cache
def clock_changes(zone_name: str) -> list[datetime]:
    """The instants at which the zone's UTC offset changes in 2026–2030 (all fall on a quarter hour)."""
    zone = zoneinfo.ZoneInfo(zone_name)
    changes = []
    day = datetime(2026, 1, 1, tzinfo=UTC)
    offset = day.astimezone(zone).utcoffset()
    while day.year < 2031:
        following = day + timedelta(days=1)
        if following.astimezone(zone).utcoffset() != offset:
            change = next(
                moment
                for moment in (day + timedelta(minutes=15 * q) for q in range(1, 97))
                if moment.astimezone(zone).utcoffset() != offset
            )
            changes.append(change)
            offset = following.astimezone(zone).utcoffset()
        day = following
    return changes


ZONES_THAT_CHANGE = sorted(z for z in zoneinfo.available_timezones() if clock_changes(z))


def test_the_email_says_which_one_oclock_in_words(inbox):
    booking = book_the_second_one_am(night_studio())
    [email] = [m for m in inbox.to(booking.customer.email) if m["X-Booking-Email"] == "confirmed"]
    when = "Sunday 31 October 2027, 01:00 GMT (the second 01:00, UTC+00:00)"
    assert f"{when} – 02:00 GMT" in email.get_body(preferencelist=("plain",)).get_content()
    assert when in email.get_body(preferencelist=("html",)).get_content()
    assert when in str(email["subject"])


def test_the_booking_page_and_the_list_of_times_tell_the_two_one_oclocks_apart(client):
    place = night_studio()
    booking = book_the_second_one_am(place)
    page = client.get(f"/b/{booking_manage_token(booking=booking)}/").content.decode()
    assert "Sun 31 Oct 2027, 01:00 GMT (the second 01:00, UTC+00:00)" in page
    assert "until 02:00 GMT" in page

    with time_machine.travel(NOW, tick=False):
        day = client.get(f"/o/{place['visit'].slug}/?from=2027-10-31&day=2027-10-31").content.decode()
    assert ">00:00<" in day and ">01:00 BST<" in day and ">02:00<" in day  # 01:00 GMT is taken now
    assert '<span class="visually-hidden">BST, book this time</span>' in day  # read out, in that hour too


def test_every_zone_that_changes_its_clocks_is_covered():
    assert {"Europe/London", "America/New_York", "Australia/Lord_Howe", "America/Santiago"} <= set(
        ZONES_THAT_CHANGE
    )


@pytest.mark.parametrize("zone_name", ZONES_THAT_CHANGE)
def test_around_every_change_of_clock_the_invite_and_the_email_name_the_instant_booked(zone_name):
    """Hour-long bookings every 15 minutes from three hours before to three hours after each change
    (fall-back days repeat an hour, spring-forward days skip one): the event as we write it is read
    back by vobject as the same two instants, and the time people read names one instant too."""
    zone = zoneinfo.ZoneInfo(zone_name)
    for change in clock_changes(zone_name):
        for quarter in range(-12, 13):
            starts_at = change + timedelta(minutes=15 * quarter)
            ends_at = starts_at + timedelta(hours=1)
            event = icalendar.Event()
            event.add("uid", f"{zone_name}-{starts_at.isoformat()}")
            event.add("dtstamp", NOW)
            event.add("dtstart", machine_moment(starts_at))
            event.add("dtend", machine_moment(ends_at))
            ical = icalendar.Calendar()
            ical.add("prodid", "-//test//EN")
            ical.add("version", "2.0")
            ical.add_component(event)
            assert read_back(ical.to_ical()) == (starts_at, ends_at), (zone_name, starts_at)

            local = starts_at.astimezone(zone)
            text = venue_time(starts_at, zone_name, "long")
            assert f"{local:%H:%M} {zone_abbreviation(local)}" in text
            if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():  # shown twice
                assert f"the {'second' if local.fold else 'first'} {local:%H:%M}, {utc_offset(local)}" in text


def test_the_person_facing_time_is_plain_on_an_ordinary_day():
    nine = datetime(2027, 7, 5, 8, tzinfo=UTC)
    assert venue_time(nine, "Europe/London", "long") == "Monday 5 July 2027, 09:00 BST"
    assert venue_time(nine, "Asia/Dubai", "time") == "12:00 UTC+04"  # a zone with no abbreviation


def test_staff_see_which_one_oclock_in_the_bookings_list(admin_client):
    book_the_second_one_am(night_studio())
    page = admin_client.get("/admin/booking/booking/").content.decode()
    assert "Sun 31 Oct, 01:00 GMT (the second 01:00, UTC+00:00)" in page
