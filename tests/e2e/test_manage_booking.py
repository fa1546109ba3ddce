"""Customers change a paid booking from the link in their confirmation email: cancel it, or move it."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from booking.models import Booking, BookingStatus
from booking.services import CustomerDetails, TicketRequest, booking_hold_appointment, booking_hold_session
from inventory.selectors import appointment_slot_list
from tests.e2e.helpers import email_text, emails_to, manage_link, pay_at_stripe
from tests.inventory import factories as make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]  # the live server sees commits


def confirmed_class_booking(business, stripe_api, *, hours_ahead: int, email: str) -> Booking:
    """A paid place (12.00 GBP) in a Vinyasa Flow class *hours_ahead* from now."""
    now = timezone.now()
    session = make.session(
        offering=business.vinyasa, starts_at=now + timedelta(hours=hours_ahead), capacity=8, now=now
    )
    booking = booking_hold_session(
        offering=business.vinyasa,
        session=session,
        tickets=[TicketRequest()],
        customer=CustomerDetails(name="Edsger Dijkstra", email=email),
        idempotency_key=f"manage-{email}",
        now=now,
    )
    return pay_at_stripe(stripe_api, booking)


@pytest.mark.parametrize(
    ("hours_ahead", "refund", "percent", "final_status"),
    # the policy: everything back 24 hours or more before the start, half from 2 to 24 hours before
    [(48, "12.00", 100, "Refunded (fully)"), (10, "6.00", 50, "Refunded (partially)")],
    ids=["full-refund", "half-refund"],
)
def test_cancelling_from_the_email_link_shows_the_refund_first_and_then_refunds_it(
    page, shot, business, stripe_api, inbox, hours_ahead, refund, percent, final_status
):
    """The cancel page states the refund before anything changes; the money then returns as promised."""
    booking = confirmed_class_booking(
        business, stripe_api, hours_ahead=hours_ahead, email="edsger@example.com"
    )
    assert booking.status == BookingStatus.CONFIRMED
    (confirmation,) = emails_to(inbox, "edsger@example.com", kind="confirmed")

    page.goto(manage_link(confirmation))
    expect(page.get_by_role("heading", level=1)).to_have_text("Vinyasa Flow")
    expect(page.locator(".status")).to_contain_text("Confirmed")
    shot(page, "1-booking")
    page.get_by_role("link", name="Cancel…").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Cancel your booking?")
    expect(page.locator(".refund")).to_have_text(
        f"You get {refund} GBP back ({percent}% of what you paid), to the card you paid with."
    )
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED  # showing the refund changed nothing
    shot(page, "2-cancel-page")
    page.get_by_label("Why are you cancelling? (optional)").fill("Plans changed")
    page.get_by_role("button", name="Cancel the booking").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Vinyasa Flow")
    expect(page.locator(".messages")).to_contain_text(
        f"Your booking is cancelled. {refund} GBP will be refunded to your card."
    )
    expect(page.locator("p.status")).to_contain_text("Cancelled")
    expect(page.get_by_role("link", name="Cancel…")).to_have_count(0)
    shot(page, "3-cancelled")

    (cancelled,) = emails_to(inbox, "edsger@example.com", kind="cancelled")  # delivers the outbox too
    assert refund in email_text(cancelled)
    booking.refresh_from_db()
    assert str(booking.amount_refunded) == refund
    assert booking.display_status == final_status

    page.reload()
    expect(page.locator("p.status")).to_contain_text(final_status)
    expect(page.locator(".facts")).to_contain_text(f"refunded {refund}")
    shot(page, "4-refunded")


def test_moving_an_appointment_from_the_email_link_shows_the_new_time(
    page, shot, business, stripe_api, inbox
):
    """The booking moves to the chosen free time; its page and a new email show the new time."""
    haircut = business.haircut
    now = timezone.now()
    first = appointment_slot_list(
        offering=haircut, start=now + timedelta(days=2), end=now + timedelta(days=9), now=now
    )[0]
    booking = booking_hold_appointment(
        offering=haircut,
        starts_at=first.starts_at,
        customer=CustomerDetails(name="Frances Allen", email="frances@example.com"),
        idempotency_key="move-me",
        now=now,
    )
    pay_at_stripe(stripe_api, booking)
    (confirmation,) = emails_to(inbox, "frances@example.com", kind="confirmed")

    page.goto(manage_link(confirmation))
    when = page.locator(".facts dd").first
    old_time = when.inner_text()
    shot(page, "1-booking")
    page.get_by_role("link", name="Move to another time").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Move your booking")
    choices = page.get_by_role("radio")
    expect(choices.first).to_be_visible()
    new_choice = choices.last  # the latest free time offered: another day
    new_time = page.locator("label.option").last.inner_text().strip()
    new_choice.check()
    shot(page, "2-choose")
    page.get_by_role("button", name="Move my booking").click()

    expect(page.locator(".messages")).to_contain_text("Your booking is moved.")
    expect(when).to_contain_text(new_time)
    assert new_time not in old_time
    shot(page, "3-moved")

    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED
    assert booking.starts_at > first.starts_at
    (moved,) = emails_to(inbox, "frances@example.com", kind="rescheduled")
    assert re.search(r"now ", str(moved["Subject"]))
