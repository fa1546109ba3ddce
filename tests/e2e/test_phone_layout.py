"""On a phone (390 × 844) the catalogue and the booking forms work and nothing needs sideways scrolling."""

import re

import pytest
from playwright.sync_api import Page, expect

from booking.models import Booking, BookingStatus
from tests.e2e.conftest import PHONE
from tests.e2e.helpers import (
    GOOD_CARD,
    controls_cut_off,
    expect_confirmed_after_payment,
    horizontal_overflow,
    pay_by_card,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]  # the live server sees commits


def fits(page: Page, what: str) -> None:
    assert page.viewport_size == PHONE
    overflow = horizontal_overflow(page)
    assert overflow <= 0, f"{what}: the page is {overflow}px wider than the phone ({page.url})"
    cut_off = controls_cut_off(page)
    assert not cut_off, f"{what}: controls stick out of the screen: {cut_off}"


def test_on_a_phone_a_class_is_found_booked_for_two_and_paid_without_sideways_scrolling(
    open_page, shot, business, stripe_settings
):
    """Search, the offering, the form with two names, checkout and the booking all fit a phone's width."""
    page = open_page(phone=True)
    page.goto("/")
    expect(page.locator("details.more-filters")).not_to_have_attribute("open", re.compile(".*"))  # folded
    fits(page, "catalogue")
    shot(page, "1-catalogue")

    page.get_by_text("More filters").tap()  # the extra filters unfold on request
    page.get_by_label("What").select_option(label="Yoga")
    results = page.locator("#results")
    expect(results.get_by_role("heading", level=2)).to_have_count(2)  # soonest first: either order
    expect(results.get_by_role("link", name="Gentle Yoga")).to_be_visible()
    fits(page, "search results")
    results.get_by_role("link", name="Vinyasa Flow").tap()

    expect(page.get_by_role("heading", level=1)).to_have_text("Vinyasa Flow")
    fits(page, "offering")
    shot(page, "2-offering")
    page.locator("#availability").get_by_role("link", name="Book", exact=True).first.tap()

    expect(page.get_by_role("heading", level=1)).to_have_text("Book Vinyasa Flow")
    fits(page, "booking form")
    page.get_by_label("Places").select_option("2")
    page.get_by_label("Name for place 1").fill("Ida Rhodes")
    page.get_by_label("Name for place 2").fill("Ruth Teitelbaum")
    page.get_by_label("Your name").fill("Ida Rhodes")
    page.get_by_label("Email").fill("ida@example.com")
    fits(page, "filled booking form")
    shot(page, "3-form")
    page.get_by_role("button", name="Hold and continue to payment").tap()

    expect(page.get_by_label("Card number")).to_be_visible()
    fits(page, "checkout")
    shot(page, "4-checkout")
    pay_by_card(page, GOOD_CARD)
    expect_confirmed_after_payment(page)
    page.get_by_role("link", name="See your booking").tap()
    expect(page.locator("ul.items li")).to_have_count(2)
    fits(page, "booking page")
    shot(page, "5-booking")

    booking = Booking.objects.get(customer__email="ida@example.com")
    assert booking.status == BookingStatus.CONFIRMED
    assert sorted(booking.items.values_list("attendee_name", flat=True)) == ["Ida Rhodes", "Ruth Teitelbaum"]


def test_on_a_phone_the_seat_map_and_the_appointment_times_fit_the_screen(open_page, shot, business):
    """The widest forms, a 16-seat-wide map and a day strip of times, need no sideways scrolling."""
    page = open_page(phone=True)
    page.goto("/o/midwinter-strings/")
    page.locator("#availability").get_by_role("link", name="Book", exact=True).first.tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("Book Midwinter Strings")
    page.get_by_role("checkbox", name=re.compile(r"\bSeat A16\b")).check()
    fits(page, "event booking form with the seat map")
    shot(page, "1-seat-map")

    page.goto("/o/haircut/")
    expect(page.locator("#availability .slots a.slot").first).to_be_visible()
    fits(page, "appointment times")
    shot(page, "2-times")
    page.locator("#availability .slots a.slot").first.tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("Book Haircut & finish")
    fits(page, "appointment booking form")
    shot(page, "3-form")
