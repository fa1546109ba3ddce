"""Classes and events: sessions, counted places per zone and ticket type, seat maps, series across DST."""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from inventory.models import CapacityCounter, PriceTier, SessionSeries, TicketType
from inventory.selectors import session_availability_get
from inventory.services import series_generate_sessions, session_capacity_change, zone_seat_map_generate
from tests.inventory import factories as make

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def hall():
    return make.location(name="Corn Exchange")


@pytest.fixture
def concert(hall):
    return make.event(
        at=hall,
        zones={"Stalls": 100, "Standing": 50},
        tickets={
            "Adult": ("38.00", ["Stalls"]),
            "Child": ("20.00", ["Stalls"]),
            "Standing": ("22.00", ["Standing"]),
        },
        horizon=timedelta(days=365),
    )


def counter(session, **scope):
    return CapacityCounter.objects.get(session=session, **{k: v for k, v in scope.items()})


def test_an_event_session_counts_places_in_total_and_per_zone(concert):
    session = make.session(offering=concert, starts_at=NOW + timedelta(days=20), now=NOW)
    availability = session_availability_get(session=session, now=NOW)
    assert availability.capacity == 150
    assert {z.name: z.remaining for z in availability.zones} == {"Stalls": 100, "Standing": 50}
    assert {t.name: t.remaining for t in availability.ticket_types} == {
        "Adult": 100,
        "Child": 100,
        "Standing": 50,
    }
    assert availability.bookable


def test_places_sold_in_a_zone_reduce_what_its_ticket_types_can_sell(concert):
    child = TicketType.objects.get(offering=concert, name="Child")
    child.limit_per_session = 10
    child.save()
    session = make.session(offering=concert, starts_at=NOW + timedelta(days=20), now=NOW)
    stalls = concert.zones.get(name="Stalls")
    CapacityCounter.objects.filter(session=session, zone=stalls).update(sold=95)
    CapacityCounter.objects.filter(session=session, zone=None, ticket_type=None).update(sold=95)
    availability = session_availability_get(session=session, now=NOW)
    assert {t.name: t.remaining for t in availability.ticket_types} == {
        "Adult": 5,
        "Child": 5,
        "Standing": 50,
    }
    CapacityCounter.objects.filter(session=session, zone=stalls).update(sold=80)
    CapacityCounter.objects.filter(session=session, zone=None, ticket_type=None).update(sold=80)
    availability = session_availability_get(session=session, now=NOW)
    assert {t.name: t.remaining for t in availability.ticket_types}["Child"] == 10  # its own limit


def test_a_sold_out_session_says_so_and_the_database_refuses_one_more(hall):
    yoga = make.class_offering(at=hall)
    session = make.session(offering=yoga, starts_at=NOW + timedelta(days=2), capacity=2, now=NOW)
    total = counter(session, zone=None, ticket_type=None)
    CapacityCounter.objects.filter(pk=total.pk).update(sold=1, held=1)
    availability = session_availability_get(session=session, now=NOW)
    assert (availability.bookable, availability.reason, availability.reason_text) == (
        False,
        "sold_out",
        "Sold out",
    )
    with pytest.raises(IntegrityError, match="counter_within_capacity"), transaction.atomic():
        CapacityCounter.objects.filter(pk=total.pk).update(sold=2)


def test_sales_windows_and_notice_decide_whether_a_session_can_be_booked(hall):
    yoga = make.class_offering(at=hall, min_notice=timedelta(hours=1))
    session = make.session(offering=yoga, starts_at=NOW + timedelta(days=2), capacity=10, now=NOW)
    session.sales_open_at = NOW + timedelta(days=1)
    session.save()
    assert session_availability_get(session=session, now=NOW).reason == "not_on_sale_yet"
    assert session_availability_get(session=session, now=NOW + timedelta(days=1)).bookable
    later = session.starts_at - timedelta(minutes=30)
    assert session_availability_get(session=session, now=later).reason == "too_late"


def test_the_price_in_force_is_the_current_tier(concert):
    standing = TicketType.objects.get(offering=concert, name="Standing")
    PriceTier.objects.create(
        ticket_type=standing, name="Early bird", price=Decimal("18.00"), valid_until=NOW + timedelta(days=7)
    )
    session = make.session(offering=concert, starts_at=NOW + timedelta(days=20), now=NOW)
    early = {
        t.name: (t.price, t.price_name)
        for t in session_availability_get(session=session, now=NOW).ticket_types
    }
    late = {
        t.name: t.price
        for t in session_availability_get(session=session, now=NOW + timedelta(days=8)).ticket_types
    }
    assert early["Standing"] == (Decimal("18.00"), "Early bird")
    assert late["Standing"] == Decimal("22.00")


def test_capacity_can_be_raised_but_not_below_what_is_taken(hall):
    yoga = make.class_offering(at=hall)
    session = make.session(offering=yoga, starts_at=NOW + timedelta(days=2), capacity=10, now=NOW)
    total = counter(session, zone=None, ticket_type=None)
    CapacityCounter.objects.filter(pk=total.pk).update(sold=6, held=2)
    assert session_capacity_change(counter=total, capacity=12).capacity == 12
    with pytest.raises(ValidationError, match="lower than the 8 places already held or sold"):
        session_capacity_change(counter=total, capacity=7)
    with pytest.raises(ValidationError, match="cannot be negative"):
        session_capacity_change(counter=total, capacity=-1)
    assert counter(session, zone=None, ticket_type=None).capacity == 12


def test_a_session_cannot_double_book_its_room(hall):
    room = make.resource(at=hall, name="Loft", kind="room", now=NOW)
    yoga = make.class_offering(at=hall)
    make.session(offering=yoga, starts_at=NOW + timedelta(days=2), capacity=10, resources=[room], now=NOW)
    with pytest.raises(ValidationError, match="Loft is already booked"):
        make.session(
            offering=yoga,
            starts_at=NOW + timedelta(days=2, minutes=30),
            capacity=10,
            resources=[room],
            now=NOW,
        )
    assert yoga.sessions.count() == 1  # the failed one left nothing behind


def test_a_weekly_series_stays_at_the_same_local_time_across_the_clock_change(hall):
    yoga = make.class_offering(at=hall)
    series = SessionSeries.objects.create(
        offering=yoga,
        weekday=1,
        start_time=time(18, 30),
        duration=timedelta(hours=1),
        capacity=12,
        starts_on=date(2026, 3, 17),
        ends_on=date(2026, 4, 7),
    )
    created = series_generate_sessions(series=series, now=NOW)
    assert [s.starts_at.astimezone(LONDON).strftime("%d %b %H:%M %Z") for s in created] == [
        "17 Mar 18:30 GMT",
        "24 Mar 18:30 GMT",
        "31 Mar 18:30 BST",
        "07 Apr 18:30 BST",
    ]
    assert series_generate_sessions(series=series, now=NOW) == []  # running it again adds nothing


def test_a_seat_map_is_rows_times_seats_and_sets_the_zone_capacity(concert):
    stalls = concert.zones.get(name="Stalls")
    seats = zone_seat_map_generate(zone=stalls, rows=3, seats_per_row=4, now=NOW)
    assert [s.label for s in seats][:5] == ["A1", "A2", "A3", "A4", "B1"]
    stalls.refresh_from_db()
    assert (stalls.capacity, stalls.is_seated) == (12, True)
    with pytest.raises(ValidationError, match="at least one row"):
        zone_seat_map_generate(zone=stalls, rows=0, seats_per_row=4, now=NOW)
