"""Cancelling under the policy, moving a booking all-or-nothing, the waitlist, and reconciliation."""

from datetime import timedelta
from decimal import Decimal

import pytest

from booking.models import Booking, BookingStatus, WaitlistEntry
from booking.services import (
    InvalidBooking,
    NotAllowed,
    booking_cancel,
    booking_confirm,
    booking_expire,
    booking_money_update,
    booking_reschedule,
    cancellation_quote,
    capacity_reconcile,
    waitlist_join,
    waitlist_offer_next,
)
from core.audit.selectors import timeline_list_for_subject
from core.outbox.services import outbox_sweep
from inventory.errors import SlotTaken, SoldOut
from inventory.models import Allocation, CapacityCounter
from tests.booking.helpers import NOW, at, hold_places, hold_slot, someone, total_counter

pytestmark = pytest.mark.django_db


def confirmed_places(yoga, n, **kwargs):
    """Places confirmed and paid for (as payments would record it)."""
    booking = booking_confirm(booking=hold_places(yoga["offering"], yoga["session"], n, **kwargs), now=NOW)
    return booking_money_update(booking=booking, paid=booking.total_amount, refunded=Decimal("0"), now=NOW)


# --- cancellation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours_before", "percent", "amount"),
    [(48, 100, "24.00"), (24, 100, "24.00"), (10, 50, "12.00"), (1, 0, "0.00")],
)
def test_the_refund_follows_the_policy_tiers_by_notice(yoga, hours_before, percent, amount):
    booking = confirmed_places(yoga, 2)
    quote = cancellation_quote(booking=booking, now=booking.starts_at - timedelta(hours=hours_before))
    assert (quote.percent, quote.amount) == (percent, Decimal(amount))


def test_cancelling_frees_the_places_and_records_the_refund_owed(yoga):
    booking = confirmed_places(yoga, 2)
    cancelled, quote = booking_cancel(booking=booking, now=NOW, by_customer=True, reason="ill")
    assert cancelled.status == BookingStatus.CANCELLED and cancelled.sequence == 1
    assert quote.amount == Decimal("24.00")
    assert total_counter(yoga["session"]).sold == 0
    entry = list(timeline_list_for_subject(subject=booking))[-1]
    assert entry.action == "booking.cancelled" and entry.actor == "customer"
    assert entry.data["refund_amount"] == "24.00"


def test_a_customer_cannot_cancel_online_without_a_policy_but_staff_can(yoga):
    yoga["offering"].cancellation_policy = None
    yoga["offering"].save()
    booking = confirmed_places(yoga, 1)
    with pytest.raises(NotAllowed, match="cannot be cancelled online"):
        booking_cancel(booking=booking, now=NOW, by_customer=True)
    assert Booking.objects.get(pk=booking.pk).status == BookingStatus.CONFIRMED
    _, quote = booking_cancel(booking=booking, now=NOW, by_customer=False, actor="maria")
    assert quote.amount == 0


def test_cancelling_an_appointment_frees_the_stylist(salon):
    booking = booking_confirm(booking=hold_slot(salon["cut"], at(10)), now=NOW)
    booking_cancel(booking=booking, now=NOW, by_customer=True)
    assert not Allocation.objects.filter(holder__startswith="booking_item:", is_active=True).exists()


# --- rescheduling -------------------------------------------------------------------------------


def test_moving_a_class_booking_takes_the_new_places_and_frees_the_old(yoga):
    booking = confirmed_places(yoga, 2)
    moved = booking_reschedule(booking=booking, new_session=yoga["later"], now=NOW, by_customer=True)
    assert moved.session == yoga["later"] and moved.sequence == 1
    assert (total_counter(yoga["session"]).sold, total_counter(yoga["later"]).sold) == (0, 2)


def test_a_move_to_a_full_session_changes_nothing(yoga):
    booking = confirmed_places(yoga, 2)
    for _ in range(3):
        hold_places(yoga["offering"], yoga["later"], 3)
    with pytest.raises(SoldOut):
        booking_reschedule(booking=booking, new_session=yoga["later"], now=NOW, by_customer=True)
    booking.refresh_from_db()
    assert booking.session == yoga["session"] and booking.sequence == 0
    assert (total_counter(yoga["session"]).sold, total_counter(yoga["later"]).held) == (2, 9)


def test_moving_an_appointment_can_reuse_its_own_time_and_fails_whole(salon):
    requirement = salon["cut"].requirements.get()
    mine = booking_confirm(
        booking=hold_slot(salon["cut"], at(10), preferred={requirement.pk: salon["ana"].pk}), now=NOW
    )
    booking_confirm(
        booking=hold_slot(salon["cut"], at(12), preferred={requirement.pk: salon["ana"].pk}), now=NOW
    )
    booking_confirm(
        booking=hold_slot(salon["cut"], at(12), preferred={requirement.pk: salon["bob"].pk}), now=NOW
    )
    moved = booking_reschedule(
        booking=mine, new_starts_at=at(10, 30), now=NOW, by_customer=True
    )  # overlaps itself
    assert moved.starts_at == at(10, 30)
    with pytest.raises(SlotTaken):
        booking_reschedule(booking=mine, new_starts_at=at(12), now=NOW, by_customer=True)
    [allocation] = Allocation.objects.filter(holder=f"booking_item:{mine.items.get().pk}", is_active=True)
    assert allocation.starts_at == at(10, 30)


def test_customers_cannot_move_a_booking_too_close_to_the_start(yoga):
    booking = confirmed_places(yoga, 1)
    with pytest.raises(NotAllowed, match="until 24 hours before"):
        booking_reschedule(
            booking=booking,
            new_session=yoga["later"],
            now=booking.starts_at - timedelta(hours=3),
            by_customer=True,
        )


# --- waitlist -----------------------------------------------------------------------------------


def test_the_waitlist_offers_freed_places_in_order_and_moves_on_when_an_offer_lapses(yoga):
    first = confirmed_places(yoga, 4)
    confirmed_places(yoga, 4)
    confirmed_places(yoga, 2)
    with pytest.raises(InvalidBooking, match="already"):
        waitlist_join(
            offering=yoga["offering"],
            session=yoga["session"],
            customer=(amy := someone("Amy")),
            quantity=2,
            now=NOW,
        )
        waitlist_join(offering=yoga["offering"], session=yoga["session"], customer=amy, quantity=1, now=NOW)
    ben = waitlist_join(
        offering=yoga["offering"],
        session=yoga["session"],
        customer=someone("Ben"),
        quantity=2,
        now=NOW + timedelta(minutes=1),
    )
    amy_entry = WaitlistEntry.objects.get(customer__name="Amy")

    booking_cancel(booking=first, now=NOW, by_customer=True)  # four places free up
    outbox_sweep(now=NOW)  # the worker delivers "places freed": both entries get an offer
    amy_entry.refresh_from_db()
    ben.refresh_from_db()
    assert (amy_entry.status, ben.status) == ("offered", "offered")
    assert amy_entry.offer.status == BookingStatus.HELD
    assert amy_entry.offer.hold_expires_at == NOW + timedelta(hours=12)

    booking_confirm(booking=ben.offer, now=NOW + timedelta(hours=1))
    booking_expire(booking_id=amy_entry.offer_id, now=NOW + timedelta(hours=12))
    amy_entry.refresh_from_db()
    ben.refresh_from_db()
    assert (amy_entry.status, ben.status) == ("lapsed", "booked")
    assert total_counter(yoga["session"]).sold == 8


def test_nobody_can_join_the_waitlist_while_places_are_left(yoga):
    with pytest.raises(InvalidBooking, match="places left"):
        waitlist_join(
            offering=yoga["offering"], session=yoga["session"], customer=someone(), quantity=1, now=NOW
        )


def test_an_entry_needing_more_than_is_free_keeps_its_turn(yoga):
    a = confirmed_places(yoga, 1)
    for _ in range(3):
        confirmed_places(yoga, 3)
    waitlist_join(offering=yoga["offering"], session=yoga["session"], customer=someone(), quantity=3, now=NOW)
    waitlist_join(offering=yoga["offering"], session=yoga["session"], customer=someone(), quantity=1, now=NOW)
    booking_cancel(booking=a, now=NOW, by_customer=True)
    assert waitlist_offer_next(session_id=yoga["session"].pk, now=NOW) == []


# --- reconciliation -----------------------------------------------------------------------------


def test_reconciliation_finds_a_counter_that_drifted_and_can_reset_it(yoga, salon):
    confirmed_places(yoga, 3)
    hold_places(yoga["offering"], yoga["session"], 2)
    hold_slot(salon["cut"], at(10))
    assert capacity_reconcile(now=NOW) == []
    CapacityCounter.objects.filter(pk=total_counter(yoga["session"]).pk).update(sold=7)  # a bug elsewhere
    Allocation.objects.filter(holder__startswith="booking_item:").update(is_active=False)
    drift = capacity_reconcile(now=NOW)
    assert [d.kind for d in drift] == ["counter", "allocation"]
    assert "expected held 2, sold 3" in str(drift[0]) and "found held 2, sold 7" in str(drift[0])
    capacity_reconcile(now=NOW, fix=True)
    assert (total_counter(yoga["session"]).held, total_counter(yoga["session"]).sold) == (2, 3)
