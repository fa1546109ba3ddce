"""Search: what a customer finds for a date range and their filters, soonest bookable first."""

from datetime import UTC, date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from inventory.models import CapacityCounter, Category
from inventory.selectors import SearchFilters, offering_search
from tests.inventory import factories as make

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)  # Monday 08:00 in London
WEEK = {"date_from": date(2026, 6, 1), "date_to": date(2026, 6, 7)}


def local(day, hour, minute=0):
    return datetime.combine(day, time(hour, minute)).replace(tzinfo=LONDON)


@pytest.fixture
def town():
    """A salon and a yoga studio in Bristol, a concert hall in Kolkata."""
    hair = Category.objects.create(name="Hair", slug="hair")
    yoga_cat = Category.objects.create(name="Yoga", slug="yoga")
    salon = make.location(name="Salon")
    studio = make.location(name="Studio")
    ana = make.resource(at=salon, name="Ana", now=NOW, hours={d: [(time(13), time(18))] for d in range(7)})
    bob = make.resource(at=salon, name="Bob", now=NOW, hours={d: [(time(9), time(12))] for d in range(7)})
    cut = make.appointment(at=salon, needs=[[ana, bob]], name="Haircut", price="45.00", category=hair)
    colour = make.appointment(at=salon, needs=[[ana]], name="Colour", price="120.00", category=hair)
    yoga = make.class_offering(at=studio, name="Evening Yoga", price="12.00", category=yoga_cat)
    evening = make.session(offering=yoga, starts_at=local(date(2026, 6, 2), 18, 30), capacity=2, now=NOW)
    later = make.session(offering=yoga, starts_at=local(date(2026, 6, 4), 18, 30), capacity=2, now=NOW)
    return {
        "cut": cut,
        "colour": colour,
        "yoga": yoga,
        "ana": ana,
        "bob": bob,
        "salon": salon,
        "studio": studio,
        "evening": evening,
        "later": later,
    }


def names(results):
    return [r.offering.name for r in results]


def search(**filters):
    return offering_search(filters=SearchFilters(**{**WEEK, **filters}), now=NOW)


def test_everything_bookable_this_week_soonest_first(town):
    results = search()
    assert names(results) == ["Haircut", "Colour", "Evening Yoga"]  # Bob's 09:00 comes before Ana's 13:00
    haircut = results[0]
    assert haircut.next_start == local(date(2026, 6, 1), 9)
    assert haircut.price_from == Decimal("45.00")
    assert results[2].places_left == 4


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"category_slug": "yoga"}, ["Evening Yoga"]),
        ({"text": "colour"}, ["Colour"]),
        ({"kind": "class"}, ["Evening Yoga"]),
        ({"price_min": Decimal("40"), "price_max": Decimal("100")}, ["Haircut"]),
        ({"time_of_day": "morning"}, ["Haircut", "Colour"]),  # Colour has nothing in the morning …
        ({"time_of_day": "evening"}, ["Colour", "Haircut", "Evening Yoga"]),  # Mon 17:00, Mon 17:00, Tue
    ],
)
def test_filters_narrow_what_is_found(town, filters, expected):
    assert names(search(**filters)) == expected


def test_the_morning_filter_keeps_only_morning_times(town):
    results = {r.offering.name: r for r in search(time_of_day="morning")}
    assert all(s.astimezone(LONDON).hour < 12 for s in results["Haircut"].starts)
    assert results["Colour"].starts == []  # … so it is listed as having no morning times


def test_only_available_drops_what_cannot_be_booked(town):
    assert names(search(time_of_day="morning", only_available=True)) == ["Haircut"]
    for session in (town["evening"], town["later"]):
        CapacityCounter.objects.filter(session=session).update(sold=2)
    assert "Evening Yoga" not in names(search(only_available=True))
    sold_out = next(r for r in search() if r.offering.name == "Evening Yoga")
    assert sold_out.available is False and [s.reason for s in sold_out.sessions] == ["sold_out", "sold_out"]


def test_asking_for_a_provider_shows_only_their_times(town):
    results = {r.offering.name: r for r in search(resource_id=town["bob"].pk)}
    assert set(results) == {"Haircut"}
    assert {s.astimezone(LONDON).hour for s in results["Haircut"].starts} <= {9, 10, 11}


def test_a_location_filter_and_a_date_range_in_the_venues_own_zone(town):
    assert names(search(location_id=town["studio"].pk)) == ["Evening Yoga"]
    only_thursday = search(
        location_id=town["studio"].pk, date_from=date(2026, 6, 4), date_to=date(2026, 6, 4)
    )
    assert [s.starts_at for s in only_thursday[0].sessions] == [town["later"].starts_at]


def test_search_loads_a_fixed_number_of_queries(town, django_assert_max_num_queries):
    with django_assert_max_num_queries(20):
        search()
