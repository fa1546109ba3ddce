"""Managing a booking through its signed link: cancel with the refund shown first, move, correct names."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine

from booking.models import BookingStatus
from booking.selectors import booking_manage_token
from booking.services import booking_confirm, booking_money_update
from core.audit.selectors import timeline_list_for_subject
from tests.booking.helpers import NOW, hold_places

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def paid(yoga):
    booking = booking_confirm(booking=hold_places(yoga["offering"], yoga["session"], 2), now=NOW)
    booking = booking_money_update(booking=booking, paid=Decimal("24.00"), refunded=Decimal("0"), now=NOW)
    return booking, f"/b/{booking_manage_token(booking=booking)}"


def test_the_cancel_page_shows_the_refund_before_anything_happens(client, paid):
    booking, url = paid
    page = client.get(f"{url}/cancel/").content.decode()
    assert "You get <strong>24.00 GBP</strong> back (100% of what you paid)" in page
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED  # looking changed nothing

    done = client.post(f"{url}/cancel/", {"reason": "ill"}, follow=True).content.decode()
    assert "Your booking is cancelled. 24.00 GBP will be refunded to your card." in done
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED


def test_moving_to_another_date_from_the_manage_link(client, paid, yoga):
    booking, url = paid
    page = client.get(f"{url}/reschedule/").content.decode()
    assert f'value="{yoga["later"].pk}"' in page and f'value="{yoga["session"].pk}"' not in page
    done = client.post(f"{url}/reschedule/", {"choice": str(yoga["later"].pk)}, follow=True).content.decode()
    assert "Your booking is moved." in done and "Tue 9 Jun 2026, 18:00 BST" in done
    booking.refresh_from_db()
    assert booking.session_id == yoga["later"].pk


def test_a_move_too_close_to_the_start_is_refused_in_place(client, paid, yoga):
    _, url = paid
    with time_machine.travel(yoga["session"].starts_at - timedelta(hours=3), tick=False):
        response = client.post(f"{url}/reschedule/", {"choice": str(yoga["later"].pk)})
    assert response.status_code == 409
    assert "can be moved online until 24 hours before the start" in response.content.decode()


def test_correcting_a_name_keeps_the_old_one_on_the_timeline(client, paid):
    booking, url = paid
    first, second = booking.items.order_by("id")
    client.post(
        f"{url}/attendees/", {f"item_{first.pk}": "Raj Patel", f"item_{second.pk}": second.attendee_name}
    )
    first.refresh_from_db()
    assert first.attendee_name == "Raj Patel"
    [entry] = [
        e for e in timeline_list_for_subject(subject=booking) if e.action == "booking.attendees.changed"
    ]
    assert entry.data["changes"] == [{"item": first.pk, "old": second.attendee_name, "new": "Raj Patel"}]
    empty = client.post(f"{url}/attendees/", {f"item_{first.pk}": "  "}, follow=True).content.decode()
    assert "Each place needs a name." in empty


def test_the_booking_page_offers_the_changes_the_policy_allows(client, paid, yoga):
    _, url = paid
    page = client.get(f"{url}/").content.decode()
    assert "Move to another date" in page and "Cancel…" in page and "Correct the names" in page
    yoga["offering"].cancellation_policy.customer_can_cancel = False
    yoga["offering"].cancellation_policy.save()
    assert "Cancel…" not in client.get(f"{url}/").content.decode()


def test_a_booking_that_cannot_be_changed_online_says_so_before_offering_a_button(client, paid, yoga):
    """An old link (or a policy changed since) leads to the cancel or move page: it says at once that
    this needs a word with us, instead of a button that only then refuses."""
    booking, url = paid
    policy = yoga["offering"].cancellation_policy
    policy.customer_can_cancel = policy.customer_can_reschedule = False
    policy.save()

    cancel = client.get(f"{url}/cancel/").content.decode()
    assert "This booking cannot be cancelled online. Please contact us." in cancel
    assert booking.reference in cancel and "Back to your booking" in cancel
    assert "Cancel the booking" not in cancel and "No money is refunded" not in cancel

    move = client.get(f"{url}/reschedule/").content.decode()
    assert "This booking cannot be moved online. Please contact us." in move
    assert "Move my booking" not in move and f'value="{yoga["later"].pk}"' not in move

    client.post(f"{url}/cancel/", {"reason": "a form kept open"})  # still refused, changes nothing
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED


def test_the_cancel_page_says_when_the_booking_has_already_started(client, paid, yoga):
    _, url = paid
    with time_machine.travel(yoga["session"].starts_at + timedelta(minutes=5), tick=False):
        page = client.get(f"{url}/cancel/").content.decode()
    assert "This has already started, so it can no longer be cancelled online." in page
    assert "Cancel the booking" not in page
