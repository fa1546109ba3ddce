"""The booking form and the booking's own page, as a browser without JavaScript uses them."""

import re
from urllib.parse import quote

import pytest
import time_machine

from booking.models import Booking, BookingStatus
from tests.booking.helpers import NOW, at, hold_places, total_counter

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def form_url(offering, session=None, start=None):
    query = f"session={session.pk}" if session else f"start={quote(start.isoformat())}"
    return f"/o/{offering.slug}/book/?{query}"


def details(**extra):
    return {
        "name": "Ann Lee",
        "email": "ann@example.com",
        "phone": "",
        "notes": "",
        "time_zone": "",
        "idempotency_key": extra.pop("idempotency_key", "k-" + str(len(extra))),
        **extra,
    }


def test_booking_a_class_holds_the_places_and_shows_the_booking(client, yoga):
    page = client.get(form_url(yoga["offering"], yoga["session"]))
    assert page.status_code == 200
    assert "Tue 2 Jun 2026, 18:00 BST" in page.content.decode()

    response = client.post(
        form_url(yoga["offering"], yoga["session"]), details(quantity="2", attendee=["Ann", "Raj"])
    )
    assert response.status_code == 303
    booking = Booking.objects.get()
    assert [i.attendee_name for i in booking.items.order_by("id")] == ["Ann", "Raj"]

    assert response["Location"].startswith("/pay/")  # a paid class goes on to checkout
    shown = client.get(response["Location"].replace("/pay/", "/b/")).content.decode()
    assert "Pending payment" in shown and booking.reference in shown
    assert re.search(r"10\s+minutes", shown)  # the hold countdown starts at the offering's hold time


def test_a_booking_form_link_to_another_offerings_session_or_an_unpublished_one_is_not_found(
    client, yoga, free_class
):
    assert client.get(form_url(free_class["offering"], yoga["session"])).status_code == 404
    assert client.get(f"/o/{yoga['offering'].slug}/book/?session=99999999999999999999").status_code == 404
    assert client.get(f"/o/{yoga['offering'].slug}/book/?session=x").status_code == 404
    page = client.get(form_url(yoga["offering"], yoga["session"]))
    assert page.status_code == 200 and "Studio" in page.content.decode()  # the venue, read with the session
    yoga["offering"].is_published = False
    yoga["offering"].save(update_fields=["is_published"])
    assert client.get(form_url(yoga["offering"], yoga["session"])).status_code == 404


def test_submitting_the_same_form_twice_books_once(client, yoga):
    data = details(quantity="1", idempotency_key="same-form")
    first = client.post(form_url(yoga["offering"], yoga["session"]), data)
    second = client.post(form_url(yoga["offering"], yoga["session"]), data)
    assert first["Location"] == second["Location"]
    assert Booking.objects.count() == 1


def test_a_sold_out_answer_is_explained_on_the_form_with_a_next_step(client, yoga):
    for _ in range(3):
        hold_places(yoga["offering"], yoga["session"], 3)
    response = client.post(form_url(yoga["offering"], yoga["session"]), details(quantity="2"))
    assert response.status_code == 409
    text = response.content.decode()
    assert "Only 1 place left; you asked for 2." in text and "Choose another time" in text
    assert total_counter(yoga["session"]).held == 9


def fill(session_fixture, places=10):
    for _ in range(places // 2):
        hold_places(session_fixture["offering"], session_fixture["session"], 2)


def test_a_sold_out_session_says_so_without_the_form_and_offers_the_waitlist(
    client, yoga, django_assert_max_num_queries
):
    fill(yoga)
    with django_assert_max_num_queries(3):  # the session, the sold-out read, the session cookie's user
        response = client.post(form_url(yoga["offering"], yoga["session"]), details(quantity="1"))
    assert response.status_code == 409
    text = response.content.decode()
    assert "Sold out." in text and "Choose another time" in text
    assert f"/o/{yoga['offering'].slug}/book/?session={yoga['session'].pk}" in text  # join the waitlist
    assert 'id="booking-form"' not in text  # nothing to fill in again
    assert total_counter(yoga["session"]).held == 10 and Booking.objects.count() == 5


def test_with_javascript_the_sold_out_answer_replaces_the_form_in_place(client, yoga):
    fill(yoga)
    response = client.post(
        form_url(yoga["offering"], yoga["session"]), details(quantity="1"), headers={"HX-Request": "true"}
    )
    assert response.status_code == 409
    text = response.content.decode()
    assert text.lstrip().startswith('<div class="alert" role="alert"') and "Sold out." in text
    assert "<html" not in text


def test_a_place_whose_hold_ran_out_is_booked_not_refused(client, yoga):
    fill(yoga)
    Booking.objects.filter(pk=Booking.objects.order_by("pk").first().pk).update(hold_expires_at=NOW)
    response = client.post(form_url(yoga["offering"], yoga["session"]), details(quantity="2"))
    assert response.status_code == 303
    assert Booking.objects.filter(status=BookingStatus.EXPIRED).count() == 1
    assert total_counter(yoga["session"]).held == 10


def test_a_retry_of_the_booking_that_took_the_last_places_gets_that_booking(client, yoga):
    for _ in range(4):
        hold_places(yoga["offering"], yoga["session"], 2)
    data = details(quantity="2", idempotency_key="last-two")
    first = client.post(form_url(yoga["offering"], yoga["session"]), data)
    again = client.post(form_url(yoga["offering"], yoga["session"]), data)
    assert first.status_code == again.status_code == 303
    assert first["Location"] == again["Location"]


def test_a_missing_name_is_marked_on_its_field_and_nothing_is_held(client, yoga):
    response = client.post(form_url(yoga["offering"], yoga["session"]), details(name="", quantity="1"))
    assert response.status_code == 422
    assert "This field is required." in response.content.decode()
    assert not Booking.objects.exists()


def test_picking_seats_for_a_concert(client, concert):
    page = client.get(form_url(concert["offering"], concert["session"])).content.decode()
    assert "Pick your seats in Stalls" in page
    seats = [concert["seats"]["A2"].pk, concert["seats"]["A3"].pk]
    response = client.post(
        form_url(concert["offering"], concert["session"]),
        details(**{f"qty_{concert['adult'].pk}": "2", f"qty_{concert['stand'].pk}": "0", "seats": seats}),
    )
    assert response.status_code == 303
    assert sorted(i.seat.label for i in Booking.objects.get().items.all()) == ["A2", "A3"]
    again = client.get(form_url(concert["offering"], concert["session"])).content.decode()
    assert re.search(rf'value="{seats[0]}" disabled', again), "a sold seat is shown as taken"


def test_a_free_appointment_is_confirmed_straight_away(client, salon):
    response = client.post(form_url(salon["facial"], start=at(10)), details())
    assert response.status_code == 303
    assert Booking.objects.get().status == BookingStatus.CONFIRMED
    assert "Confirmed" in client.get(response["Location"]).content.decode()


def test_a_sold_out_class_offers_the_waitlist(client, free_class):
    for _ in range(5):
        hold_places(free_class["offering"], free_class["session"], 1)
    page = client.get(form_url(free_class["offering"], free_class["session"])).content.decode()
    assert "Sold out." in page and "Join the waitlist" in page
    joined = client.post(
        f"/o/{free_class['offering'].slug}/waitlist/?session={free_class['session'].pk}",
        {"name": "Ann", "email": "ann@example.com", "quantity": "1"},
    )
    assert "You are on the waitlist for 1 place" in joined.content.decode()


def test_a_forged_booking_link_is_not_found(client, yoga):
    booking = hold_places(yoga["offering"], yoga["session"], 1)
    assert client.get(f"/b/{booking.reference}/").status_code == 404
