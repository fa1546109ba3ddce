"""Every page runs under the site's Content-Security-Policy with nothing blocked.

`open_page` fails any browser test on a violation Chromium reports, so the customer journeys, the
checkout with Stripe's card form, the door app and the manage pages are all checked where they are
tested. This test adds what staff open in admin and a printed ticket.
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from booking.services import CustomerDetails, TicketRequest, booking_confirm, booking_hold_session
from inventory.models import Session
from ticketing.models import Ticket
from ticketing.services import tickets_sync

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]  # the live server sees commits


def test_staff_pages_and_a_printed_ticket_show_everything_under_the_policy(page, business, admin_user):
    now = timezone.now()
    session = (
        Session.objects.filter(offering=business.vinyasa, starts_at__gt=now).order_by("starts_at").first()
    )
    booking = booking_hold_session(
        offering=business.vinyasa,
        session=session,
        tickets=[TicketRequest()],
        customer=CustomerDetails("Ada Lovelace", "ada@example.com"),
        idempotency_key="csp-1",
        now=now,
    )
    booking_confirm(booking=booking, now=now)
    tickets_sync(booking_id=booking.pk, now=now, reason="confirmed")
    ticket = Ticket.objects.get(booking=booking)

    response = page.goto(f"/t/{ticket.access_key}/?print=1")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy.split("style-src-attr")[0]
    expect(page.get_by_role("button", name="Print this ticket")).to_be_visible()
    assert page.locator(".ticket").evaluate("e => getComputedStyle(e).borderTopStyle") == "solid"  # its CSS

    page.goto("/admin/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name=re.compile("administration", re.I))).to_be_visible()
    for path, heading in [
        ("/admin/booking/booking/", "Select booking to change"),
        (f"/admin/booking/booking/{booking.pk}/change/", "Change booking"),
        (f"/staff/schedule/?date={session.starts_at:%Y-%m-%d}", "Day schedule"),
        (f"/staff/reports/?start={(now - timedelta(days=7)):%Y-%m-%d}", "Reports"),
    ]:
        page.goto(path)
        expect(page.locator("#content h1, #content h2").first).to_contain_text(heading)
    expect(page.locator(".report-filters")).to_have_css("display", "flex")  # reports.css applied
