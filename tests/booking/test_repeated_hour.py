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

import pytest
import time_machine

from booking.models import Booking, Customer
from booking.notifications import booking_ics
from booking.selectors import booking_manage_token
from core.times import utc_offset, venue_time, zone_abbreviation
from inventory.models import Offering
from inventory.selectors import appointment_slot_list
from tests.booking.clock_changes import (
    ZONES_THAT_CHANGE,
    clock_changes,
    open_all_day,
    repeated_quarters,
    touched_stretch,
    zones_that_change_alike,
)
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


def offered_around(visit: Offering, change: datetime) -> list[datetime]:
    window = (change - timedelta(hours=3), change + timedelta(hours=3))
    slots = appointment_slot_list(
        offering=visit, start=window[0], end=window[1], now=change - timedelta(days=1)
    )
    return [slot.starts_at for slot in slots]


@pytest.mark.parametrize("zone_name", ZONES_THAT_CHANGE)
def test_around_every_change_of_clock_both_one_oclocks_are_offered_and_told_apart(zone_name):
    """A venue in the zone, open all day, selling quarter-hour visits. Around each change of clock in
    2026–2030 (fall-back days repeat a wall-clock stretch, spring-forward days skip one) both instants
    of a repeated wall time are offered, and the time the emails, pages and exports show for every
    offered start names that one instant: its abbreviation, and which of the two where it repeats."""
    zone = zoneinfo.ZoneInfo(zone_name)
    visit = open_all_day(zone_name)
    for change in clock_changes(zone_name):
        offered = offered_around(visit, change)
        assert offered == sorted(set(offered)), (zone_name, change)
        for repeated in repeated_quarters(zone, change - timedelta(hours=3), change + timedelta(hours=3)):
            assert repeated in offered, (zone_name, repeated)

        for starts_at in offered:
            local = starts_at.astimezone(zone)
            text = venue_time(starts_at, zone_name, "long")
            assert f"{local:%H:%M} {zone_abbreviation(local)}" in text
            if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():  # shown twice
                assert f"the {'second' if local.fold else 'first'} {local:%H:%M}, {utc_offset(local)}" in text


@pytest.mark.parametrize("zone_name", zones_that_change_alike())
def test_around_every_change_of_clock_the_invite_names_each_offered_instant(zone_name):
    """Every start offered in the stretch a change touches (and a quarter hour either side) goes into
    the invite exactly as the confirmation email writes it, and vobject reads back the booked instants.
    One zone stands for all whose clocks change at the same instants to the same offsets: the invite
    is written in UTC, so nothing else about a zone reaches it. (Booked for real, with the email and the
    CalDAV event read back from Radicale: tests/calendarsync/test_repeated_hour.py.)"""
    visit = open_all_day(zone_name)
    for change in clock_changes(zone_name):
        start, end = touched_stretch(zone_name, change)
        for starts_at in (moment for moment in offered_around(visit, change) if start <= moment < end):
            booking = Booking(
                reference=f"Q{starts_at:%y%m%d%H%M}",
                offering=visit,
                customer=Customer(name="Zoé Martin", email="zoe@example.com"),
                starts_at=starts_at,
                ends_at=starts_at + visit.duration,
            )
            invite = booking_ics(booking=booking, method="REQUEST", now=NOW)
            assert read_back(invite) == (booking.starts_at, booking.ends_at), (zone_name, starts_at)


def test_the_person_facing_time_is_plain_on_an_ordinary_day():
    nine = datetime(2027, 7, 5, 8, tzinfo=UTC)
    assert venue_time(nine, "Europe/London", "long") == "Monday 5 July 2027, 09:00 BST"
    assert venue_time(nine, "Asia/Dubai", "time") == "12:00 UTC+04"  # a zone with no abbreviation


def test_staff_see_which_one_oclock_in_the_bookings_list(admin_client):
    book_the_second_one_am(night_studio())
    page = admin_client.get("/admin/booking/booking/").content.decode()
    assert "Sun 31 Oct, 01:00 GMT (the second 01:00, UTC+00:00)" in page
