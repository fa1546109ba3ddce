"""Running the day from admin: one booking's whole story on its page, finding bookings fast, fixing
details with the old values kept, and sign-in attempts throttled."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.utils import timezone

from booking.models import Booking
from core.outbox.services import outbox_sweep
from core.roles import FRONT_DESK, MANAGER
from inventory.models import CapacityCounter
from tests.booking.helpers import hold_places, someone
from tests.staff.test_permissions import paid_booking, refund
from tests.ticketing.helpers import door_list
from ticketing.models import Ticket
from ticketing.services import ScanReport, scans_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(client):
    user = get_user_model().objects.create_user("maria", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=MANAGER))
    client.force_login(user)
    return user


def timeline_actions(page: str) -> list[str]:
    table = page.split('<table class="timeline">')[1].split("</table>")[0]
    return re.findall(r"<code>([a-z_.]+)</code>", table)


def test_a_bookings_page_tells_its_whole_story_in_order_and_who_did_each_step(
    client, manager, stripe_api, soon, now
):
    booking = paid_booking(stripe_api, soon, now)  # hold, pay with Stripe, confirm, tickets, emails
    client.post(f"/admin/booking/booking/{booking.pk}/act/reschedule/", {"to": f"session:{soon['later'].pk}"})
    outbox_sweep(now=timezone.now())  # new tickets for the new date,
    outbox_sweep(now=timezone.now())  # and the emails those queued: the customer told
    refund(client, booking, "5.00")
    ticket = Ticket.objects.filter(booking=booking, status="valid").first()
    arrival = soon["later"].starts_at - timedelta(minutes=10)
    report = ScanReport(id=uuid.uuid4(), raw=ticket.payload, scanned_at=arrival, shown_result="")
    scans_record(checkin_list=door_list(soon["later"]), reports=[report], device=None, now=arrival)

    page = client.get(f"/admin/booking/booking/{booking.pk}/change/").content.decode()

    steps = timeline_actions(page)
    expected_in_order = [
        "booking.hold.created",
        "payments.intent.created",
        "booking.confirmed",
        "ticketing.tickets.issued",
        "booking.rescheduled",
        "ticketing.tickets.revoked",
        "payments.refund.requested",
        "ticketing.checked_in",
    ]
    missing = [step for step in expected_in_order if step not in steps]
    assert not missing, f"missing from the timeline: {missing}"
    positions = [steps.index(step) for step in expected_in_order]
    assert positions == sorted(positions), steps
    assert "booking.email.sent" in steps
    assert "maria" in page  # the reschedule and the refund say who did them
    for field in ("pi_", "ch_"):  # Stripe's ids are on the page
        assert field in page


def test_staff_find_a_booking_by_reference_email_phone_attendee_or_ticket_code(
    client, manager, stripe_api, soon, now
):
    booking = paid_booking(stripe_api, soon, now)
    other = hold_places(soon["offering"], soon["session"], 1, who=someone("Someone Else"), now=now)
    ticket = Ticket.objects.filter(booking=booking).first()
    for term in (booking.reference, booking.customer.email, ticket.code):
        page = client.get("/admin/booking/booking/", {"q": term}).content.decode()
        assert booking.reference in page and other.reference not in page, term


def test_the_booking_list_takes_the_same_few_queries_for_ten_or_forty_bookings(
    client, manager, soon, now, django_assert_max_num_queries
):
    CapacityCounter.objects.filter(session=soon["session"]).update(capacity=100)

    def list_with(n):
        for _ in range(n):
            hold_places(soon["offering"], soon["session"], 1, now=now)
        with django_assert_max_num_queries(25):
            assert client.get("/admin/booking/booking/").status_code == 200

    list_with(10)
    list_with(30)
    for filters in ({"paid": "unpaid"}, {"location": soon["offering"].location_id}, {"status": "held"}):
        with django_assert_max_num_queries(25):
            assert client.get("/admin/booking/booking/", filters).status_code == 200


def test_correcting_details_keeps_the_old_values_on_the_timeline(client, manager, stripe_api, soon, now):
    booking = paid_booking(stripe_api, soon, now)
    old_email = booking.customer.email
    answer = client.post(
        f"/admin/booking/booking/{booking.pk}/act/correct/",
        {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0001"},
    )
    assert answer.status_code == 302
    page = client.get(f"/admin/booking/booking/{booking.pk}/change/").content.decode()
    assert "booking.customer.corrected" in page and old_email in page and "ada@example.com" in page


def test_a_bad_correction_is_explained_and_changes_nothing(client, manager, stripe_api, soon, now):
    booking = paid_booking(stripe_api, soon, now)
    taken = hold_places(soon["offering"], soon["session"], 1, who=someone("Taken"), now=now).customer.email
    answer = client.post(
        f"/admin/booking/booking/{booking.pk}/act/correct/", {"name": "X", "email": taken, "phone": ""}
    )
    assert f"Another customer already uses {taken}" in answer.content.decode()
    assert Booking.objects.get(pk=booking.pk).customer.name != "X"


@pytest.mark.parametrize("path", ["/admin/login/", "/door/login/"])
def test_after_five_wrong_passwords_even_the_right_one_waits(client, path, settings):
    settings.LOGIN_FAILURES_ALLOWED = 5
    cache.clear()  # counters of an earlier test (same name, same address) must not count here
    user = get_user_model().objects.create_user("desk", password="right-password", is_staff=True)
    user.groups.add(Group.objects.get(name=FRONT_DESK))
    for _ in range(5):
        wrong = client.post(path, {"username": "desk", "password": "guess"})
        assert "Too many failed sign-ins" not in wrong.content.decode()
    refused = client.post(path, {"username": "desk", "password": "right-password"})
    assert (
        "Too many failed sign-ins for this user from here. Try again in 15 minutes"
        in refused.content.decode()
    )
    assert "_auth_user_id" not in client.session
    other = client.post(path, {"username": "someone-else", "password": "x"})  # others are not locked out
    assert "Too many failed sign-ins" not in other.content.decode()


def test_the_admin_home_leads_each_role_to_its_pages(client):
    desk = get_user_model().objects.create_user("desk2", password="pw", is_staff=True)
    desk.groups.add(Group.objects.get(name=FRONT_DESK))
    client.force_login(desk)
    home = client.get("/admin/").content.decode()
    assert "Run the day" in home and "/staff/schedule/" in home and "/door/" in home
    assert "/staff/reports/" not in home  # managers only
    assert client.get("/staff/schedule/").status_code == 200
    assert client.get("/staff/reports/").status_code == 403


@pytest.mark.parametrize("path", ["/admin/login/", "/door/login/"])
def test_with_redis_down_staff_still_sign_in_and_guessing_is_still_throttled(
    client, path, settings, private_redis
):
    """The throttle's counters fall back to the web process's memory instead of answering 500."""
    settings.LOGIN_FAILURES_ALLOWED = 3
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": private_redis.url(),
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    private_redis.stop()  # the outage
    user = get_user_model().objects.create_user("door-ana", password="right-password", is_staff=True)
    user.groups.add(Group.objects.get(name=FRONT_DESK))

    guesser = f"guesser{path.replace('/', '-')}"  # the fallback counts in this process: one per test
    for _ in range(3):
        wrong = client.post(path, {"username": guesser, "password": "guess"})
        assert wrong.status_code == 200 and "Too many failed sign-ins" not in wrong.content.decode()
    refused = client.post(path, {"username": guesser, "password": "guess"})
    assert "Too many failed sign-ins for this user from here" in refused.content.decode()

    signed_in = client.post(path, {"username": "door-ana", "password": "right-password"})
    assert signed_in.status_code == 302 and "_auth_user_id" in client.session
