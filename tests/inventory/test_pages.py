"""The catalogue and offering pages, as plain HTML and as htmx fragments."""

from datetime import time, timedelta

import pytest
import time_machine

from inventory.models import CapacityCounter, Category
from tests.booking.helpers import NOW, TUESDAY, at, hold_places
from tests.inventory import factories as make

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_clock(settings):
    settings.BUSINESS_TIME_ZONE = "Europe/London"
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def shop():
    hair = Category.objects.create(name="Hair", slug="hair")
    salon = make.location(name="Salon")
    ana = make.resource(at=salon, name="Ana", now=NOW, hours={d: [(time(9), time(12))] for d in range(7)})
    cut = make.appointment(at=salon, needs=[[ana]], name="Haircut", price="45.00", category=hair, interval=60)
    yoga = make.class_offering(at=make.location(name="Studio"), name="Evening Yoga", waitlist_enabled=True)
    session = make.session(offering=yoga, starts_at=at(18), capacity=2, now=NOW)
    return {"cut": cut, "yoga": yoga, "session": session, "ana": ana}


def test_the_catalogue_lists_what_can_be_booked_with_its_next_times(client, shop):
    page = client.get("/").content.decode()
    assert "Haircut" in page and "Evening Yoga" in page
    assert "Tue 2 Jun, 18:00 BST" in page and "from <strong>45.00 GBP</strong>" in page


def test_filters_are_a_shareable_url_and_htmx_gets_only_the_results(client, shop):
    full = client.get("/?category=hair").content.decode()
    assert "Haircut" in full and "Evening Yoga" not in full and "<form" in full
    fragment = client.get("/?category=hair", headers={"HX-Request": "true"})
    assert fragment["Vary"] == "HX-Request"
    text = fragment.content.decode()
    assert text.lstrip().startswith('<section id="results"') and "<form" not in text and "Haircut" in text


def test_a_bad_price_range_is_explained_on_its_field(client, shop):
    page = client.get("/?price_min=50&price_max=10").content.decode()
    assert "The highest price must not be below the lowest." in page


def test_an_appointment_page_shows_a_day_strip_and_that_days_times(client, shop):
    page = client.get(f"/o/{shop['cut'].slug}/").content.decode()
    assert "Paid in full by card when you book." in page  # the payment plan, from payments
    assert "Monday 1 June" in page  # the first day with free times
    tuesday = client.get(f"/o/{shop['cut'].slug}/?day={TUESDAY:%Y-%m-%d}").content.decode()
    for hour in ("09:00", "10:00", "11:00"):
        assert f">{hour}</time>" in tuesday
    assert f"/o/{shop['cut'].slug}/book/?start=" in tuesday  # each time leads to the booking form


def test_a_taken_time_disappears_on_the_next_refresh(client, shop):
    fragment = lambda: client.get(  # noqa: E731 - what the page's every-10s refresh asks for
        f"/o/{shop['cut'].slug}/?day={TUESDAY:%Y-%m-%d}", headers={"HX-Request": "true"}
    ).content.decode()
    assert ">10:00</time>" in fragment()
    make.allocation(on=shop["ana"], starts_at=at(10), now=NOW)
    assert ">10:00</time>" not in fragment()
    assert fragment().lstrip().startswith('<section id="availability"')


def test_a_class_page_lists_dates_with_places_and_the_waitlist_when_full(client, shop):
    page = client.get(f"/o/{shop['yoga'].slug}/").content.decode()
    assert "2 of 2 places left" in page and ">Book</a>" in page
    CapacityCounter.objects.filter(session=shop["session"]).update(sold=2)
    page = client.get(f"/o/{shop['yoga'].slug}/").content.decode()
    assert "Sold out" in page and "Join the waitlist" in page


def test_an_unknown_or_hidden_offering_is_not_found(client, shop):
    assert client.get("/o/no-such-thing/").status_code == 404
    shop["yoga"].is_published = False
    shop["yoga"].save()
    assert client.get(f"/o/{shop['yoga'].slug}/").status_code == 404


def test_the_catalogue_answers_in_a_fixed_number_of_queries(client, shop, django_assert_max_num_queries):
    for n in range(5):
        make.session(offering=shop["yoga"], starts_at=at(18) + timedelta(days=n + 1), capacity=5, now=NOW)
    hold_places(shop["yoga"], shop["session"], 1)
    with django_assert_max_num_queries(25):
        client.get("/")


def test_choosing_a_time_zone_keeps_it_for_the_next_pages(client):
    response = client.post("/time-zone/", {"tz": "Asia/Kolkata", "next": "/o/x/"})
    assert response.status_code == 302 and response["Location"] == "/o/x/"
    assert response.cookies["tz"].value == "Asia/Kolkata"
    refused = client.post("/time-zone/", {"tz": "Mars/Base", "next": "https://evil.example/"})
    assert refused.status_code == 200 and "tz" not in refused.cookies


def test_head_answers_wherever_get_does_without_a_body(client, shop):
    """Uptime monitors and link checkers ask with HEAD; they got 405 on every page."""
    yoga, session = shop["yoga"], shop["session"]
    pages = ("/", f"/o/{shop['cut'].slug}/", f"/o/{yoga.slug}/", f"/o/{yoga.slug}/book/?session={session.pk}")
    for path in pages:
        head, get = client.head(path), client.get(path)
        assert (head.status_code, get.status_code) == (200, 200), path
        assert head.content == b"" and head["Content-Type"] == get["Content-Type"]
    assert client.head("/healthz").status_code in (200, 503)  # its verdict, not "method not allowed"
