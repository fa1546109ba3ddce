"""Sunday 31 October 2027 in London, the night the clocks go back, and a booking at the second 01:00.

At 02:00 BST the clocks go back to 01:00 GMT, so the wall clock shows 01:00–02:00 twice. Ana works
00:00–05:00; Zoé books the second 01:00 (01:00 GMT = 01:00 UTC). RFC 5545 reads a local "01:00" with
TZID=Europe/London on that day as the first 01:00 (00:00 UTC).
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, time, timedelta

import vobject

from booking.services import booking_confirm
from core.outbox.services import outbox_sweep
from tests.booking.helpers import hold_slot, someone
from tests.inventory import factories as make

LONDON = zoneinfo.ZoneInfo("Europe/London")
NOW = datetime(2027, 10, 24, 9, 0, tzinfo=UTC)
SECOND_ONE_AM = datetime(2027, 10, 31, 1, 0, tzinfo=UTC)  # 01:00 GMT, after the clocks went back


def night_studio() -> dict:
    studio = make.location(name="Night Studio", time_zone="Europe/London")
    ana = make.resource(at=studio, name="Ana", now=NOW, hours={d: [(time(0), time(5))] for d in range(7)})
    visit = make.appointment(
        at=studio, needs=[[ana]], name="Night visit", minutes=60, interval=60, price="0.00"
    )
    return {"ana": ana, "visit": visit}


def book_the_second_one_am(place: dict):
    booking = hold_slot(place["visit"], SECOND_ONE_AM, who=someone("Zoé Martin"), now=NOW)
    booking_confirm(booking=booking, now=NOW)
    for _ in range(3):  # what the worker does: the events, then the emails and pushes they queue
        outbox_sweep(now=NOW + timedelta(seconds=1))
    return booking


def read_back(ics: bytes | str) -> tuple[datetime, datetime]:
    """DTSTART and DTEND as instants, as another calendar program reads them."""
    event = vobject.readOne(ics.decode() if isinstance(ics, bytes) else ics).vevent
    return event.dtstart.value.astimezone(UTC), event.dtend.value.astimezone(UTC)
