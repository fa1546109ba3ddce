"""Customers find, book and pay on the website in a real browser (the business is in business.py)."""

import re
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone
from icalendar import Calendar
from playwright.sync_api import Page, expect

from booking.models import Booking, BookingStatus, WaitlistEntry
from booking.services import CustomerDetails, TicketRequest, booking_hold_session
from tests.e2e.helpers import (
    DECLINED_CARD,
    GOOD_CARD,
    email_text,
    emails_to,
    expect_confirmed_after_payment,
    htmx_swap,
    pay_by_card,
)
from tests.inventory import factories as make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]  # the live server sees commits


def fill_details(page: Page, name: str, email: str) -> None:
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email").fill(email)


def test_search_book_and_pay_for_an_appointment_then_get_the_confirmation_and_invite(
    page, shot, business, stripe_settings, inbox
):
    """A found appointment is held, paid by card, shown Confirmed, and confirmed by email with an invite."""
    page.goto("/")
    page.get_by_role("searchbox", name="Search").fill("haircut")
    results = page.locator("#results")
    expect(results.get_by_role("heading", level=2)).to_have_text(["Haircut & finish"])
    expect(page).to_have_url(re.compile(r"[?&]q=haircut"))  # the search is a link one can share
    shot(page, "1-search")

    results.get_by_role("link", name="Haircut & finish").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Haircut & finish")
    first_time = page.locator("#availability .slots a.slot").first
    href = first_time.get_attribute("href")  # the same time, even if the live refresh redraws the list
    starts_at = datetime.fromisoformat(parse_qs(urlsplit(href).query)["start"][0])
    shot(page, "2-offering")
    page.locator(f'#availability a.slot[href="{href}"]').click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Book Haircut & finish")
    fill_details(page, "Ada Lovelace", "ada@example.com")
    shot(page, "3-form")
    page.get_by_role("button", name="Hold and continue to payment").click()

    page.wait_for_url(re.compile(r"/pay/[^/]+/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Complete your booking")
    expect(page.get_by_role("button", name="Pay 48.00 GBP")).to_be_visible()
    held = Booking.objects.get(customer__email="ada@example.com")
    left = int((held.hold_expires_at - timezone.now()).total_seconds() // 60)  # the page counts by its clock
    expect(page.locator(".countdown")).to_have_text(re.compile(rf"^({left}|{left - 1}):[0-5]\d$"))
    shot(page, "4-checkout")
    pay_by_card(page, GOOD_CARD)
    expect_confirmed_after_payment(page)
    shot(page, "5-confirmed")

    booking = Booking.objects.get(customer__email="ada@example.com")
    assert booking.status == BookingStatus.CONFIRMED
    assert booking.starts_at == starts_at
    assert booking.amount_paid == booking.total_amount == 48

    (confirmation,) = emails_to(inbox, "ada@example.com", kind="confirmed")
    assert str(confirmation["Subject"]).strip().startswith("Confirmed: Haircut & finish")
    assert booking.reference in email_text(confirmation)
    invites = [
        part for part in confirmation.iter_attachments() if part.get_filename() == f"{booking.reference}.ics"
    ]
    assert len(invites) == 1
    invite = Calendar.from_ical(invites[0].get_payload(decode=True))
    assert invite["METHOD"] == "REQUEST"
    (event,) = invite.walk("VEVENT")
    assert event.decoded("DTSTART") == starts_at


def test_three_places_in_a_class_carry_the_three_attendee_names(page, shot, business, stripe_settings):
    """Choosing 3 places asks for 3 names; after paying, the booking lists the 3 places with those names."""
    page.goto("/")
    page.get_by_label("Type").select_option(label="Class")
    expect(page).to_have_url(re.compile(r"[?&]kind=class"))
    page.locator("#results").get_by_role("link", name="Vinyasa Flow").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Vinyasa Flow")
    shot(page, "1-offering")
    page.locator("#availability").get_by_role("link", name="Book", exact=True).first.click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Book Vinyasa Flow")
    expect(page.get_by_label("Name for place 1")).to_be_hidden()  # one place needs no names
    page.get_by_label("Places").select_option("3")
    names = ["Grace Hopper", "Katherine Johnson", "Mary Jackson"]
    for n, name in enumerate(names, start=1):
        page.get_by_label(f"Name for place {n}").fill(name)
    expect(page.get_by_label("Name for place 4")).to_be_hidden()
    fill_details(page, "Grace Hopper", "grace@example.com")
    shot(page, "2-form")
    page.get_by_role("button", name="Hold and continue to payment").click()

    expect(page.get_by_role("button", name="Pay 36.00 GBP")).to_be_visible()  # 3 × 12.00
    pay_by_card(page, GOOD_CARD)
    expect_confirmed_after_payment(page)
    page.get_by_role("link", name="See your booking").click()

    expect(page.locator(".status")).to_contain_text("Confirmed")
    places = page.locator("ul.items li")
    expect(places).to_have_count(3)
    for place, name in zip(places.all(), names, strict=True):
        expect(place).to_contain_text(name)
    shot(page, "3-booking")

    booking = Booking.objects.get(customer__email="grace@example.com")
    assert booking.status == BookingStatus.CONFIRMED
    assert sorted(booking.items.values_list("attendee_name", flat=True)) == sorted(names)


def seat(page: Page, label: str):
    """A seat's checkbox on the seat map, by its label ("A7")."""
    return page.get_by_role("checkbox", name=re.compile(rf"\bSeat {label}\b"))


def test_two_seats_picked_on_the_seat_map_are_booked_and_then_shown_taken(
    page, shot, business, stripe_settings
):
    """The two seats chosen on the map are on the paid booking and can no longer be chosen by anyone."""
    page.goto("/o/midwinter-strings/")
    book = page.locator("#availability").get_by_role("link", name="Book", exact=True).first
    form_url = book.get_attribute("href")
    book.click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Book Midwinter Strings")
    page.get_by_label("Stalls – Adult").fill("2")
    seat(page, "C7").check()
    seat(page, "C8").check()
    expect(seat(page, "C7")).to_be_checked()
    shot(page, "1-seat-map")
    fill_details(page, "Alan Turing", "alan@example.com")
    page.get_by_role("button", name="Hold and continue to payment").click()

    expect(page.get_by_role("button", name="Pay 76.00 GBP")).to_be_visible()  # 2 × 38.00
    expect(page.locator(".summary")).to_contain_text("seat C7")
    pay_by_card(page, GOOD_CARD)
    expect_confirmed_after_payment(page)
    page.get_by_role("link", name="See your booking").click()

    places = page.locator("ul.items li")
    expect(places).to_have_count(2)
    expect(places.filter(has_text="seat C7")).to_have_count(1)
    expect(places.filter(has_text="seat C8")).to_have_count(1)
    shot(page, "2-booking")

    booking = Booking.objects.get(customer__email="alan@example.com")
    assert booking.status == BookingStatus.CONFIRMED
    assert sorted(booking.items.values_list("seat__label", flat=True)) == ["C7", "C8"]

    page.goto(form_url)  # the next customer's seat map
    for label in ("C7", "C8"):
        expect(seat(page, label)).to_be_disabled()
        expect(seat(page, label)).to_have_accessible_name(re.compile(rf"Seat {label}, taken"))
    expect(seat(page, "C9")).to_be_enabled()
    shot(page, "3-seats-taken")


def test_a_sold_out_class_offers_the_waitlist_and_joining_it_is_confirmed(page, shot):
    """With no places left the class offers its waitlist; joining says so and records the entry."""
    now = timezone.now()
    studio = make.location(name="Harbour Studio")
    pilates = make.class_offering(at=studio, name="Reformer Pilates", price="0.00", waitlist_enabled=True)
    session = make.session(offering=pilates, starts_at=now + timedelta(days=2), capacity=2, now=now)
    booking_hold_session(
        offering=pilates,
        session=session,
        tickets=[TicketRequest(), TicketRequest()],
        customer=CustomerDetails(name="Early Bird", email="early@example.com"),
        idempotency_key="sold-out",
        now=now,
    )

    page.goto(f"/o/{pilates.slug}/")
    availability = page.locator("#availability")
    expect(availability).to_contain_text("Sold out")
    expect(availability.get_by_role("link", name="Book", exact=True)).to_have_count(0)
    shot(page, "1-offering")
    availability.get_by_role("link", name="Join the waitlist").click()

    expect(page.get_by_role("alert")).to_contain_text("Join the waitlist")
    page.get_by_label("Your name").fill("Rosalind Franklin")
    page.get_by_label("Email").fill("rosalind@example.com")
    page.get_by_label("Places wanted").fill("1")
    shot(page, "2-waitlist-form")
    page.get_by_role("button", name="Join the waitlist").click()

    expect(page.get_by_role("status")).to_contain_text("You are on the waitlist for 1 place.")
    shot(page, "3-joined")
    entry = WaitlistEntry.objects.get(customer__email="rosalind@example.com")
    assert (entry.session_id, entry.quantity) == (session.pk, 1)


def test_a_declined_card_is_explained_in_place_and_another_card_then_pays(
    page, shot, business, stripe_settings
):
    """A decline keeps the customer on the checkout with the reason; a good card then confirms the booking."""
    page.goto("/o/gentle-yoga/")
    page.locator("#availability").get_by_role("link", name="Book", exact=True).first.click()
    fill_details(page, "Barbara Liskov", "barbara@example.com")
    page.get_by_role("button", name="Hold and continue to payment").click()
    checkout_url = re.compile(r"/pay/[^/]+/$")
    page.wait_for_url(checkout_url)

    pay_by_card(page, DECLINED_CARD)
    message = page.locator("#payment-message")
    expect(message).to_be_visible()
    expect(message).to_contain_text("declined")
    expect(message).to_have_attribute("role", "alert")
    expect(page).to_have_url(checkout_url)
    expect(page.get_by_role("button", name="Pay 12.00 GBP")).to_be_enabled()
    shot(page, "1-declined")
    booking = Booking.objects.get(customer__email="barbara@example.com")
    assert booking.display_status == "Pending payment"  # still held: nothing was taken

    pay_by_card(page, GOOD_CARD)
    expect_confirmed_after_payment(page)
    shot(page, "2-confirmed")
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED
    assert booking.amount_paid == 12


def test_times_are_offered_in_the_venues_own_zone(open_page, shot):
    """A Paris salon open 09:00–17:00 offers a customer in Paris 09:00 to 16:00, as the form confirms."""
    now = timezone.now()
    paris = make.location(name="Atelier Rivoli", time_zone="Europe/Paris")
    stylist = make.resource(at=paris, name="Camille", now=now)  # 09:00–17:00 every day, Paris time
    cut = make.appointment(at=paris, needs=[[stylist]], name="Coupe", minutes=60, interval=60, price="0.00")
    page = open_page(timezone_id="Europe/Paris")

    page.goto(f"/o/{cut.slug}/")
    tomorrow = page.get_by_role("navigation", name="Days").get_by_role("link").nth(1)  # a whole day
    with htmx_swap(page, tomorrow.get_attribute("hx-get")):  # today's times are on the page until then
        tomorrow.click()
    times = page.locator("#availability .slots a.slot time")
    shot(page, "1-times")
    assert times.all_inner_texts() == [f"{h:02d}:00" for h in range(9, 17)]

    page.get_by_role("link", name=re.compile(r"^09:00\b")).click()
    expect(page.locator(".summary .when time")).to_contain_text(re.compile(r"09:00 CES?T"))
    shot(page, "2-form")
