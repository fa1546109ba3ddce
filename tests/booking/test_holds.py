"""Holding places and slots: what a customer gets, what bad input is refused, and what is left behind."""

from datetime import timedelta

import pytest

from booking.models import Booking, BookingStatus, Customer
from booking.services import (
    CustomerDetails,
    IdempotencyConflict,
    InvalidBooking,
    TicketRequest,
    booking_confirm,
    booking_expire,
    hold_release_expired,
)
from booking.states import IllegalTransition
from core.audit.selectors import timeline_list_for_subject
from core.outbox.models import OutboxMessage
from inventory.errors import SeatTaken, SlotTaken, SoldOut
from inventory.models import Allocation, CapacityCounter, SeatAllocation
from tests.booking.helpers import NOW, at, hold_places, hold_slot, key, someone, total_counter

pytestmark = pytest.mark.django_db


def actions(booking):
    return [e.action for e in timeline_list_for_subject(subject=booking)]


def topics(booking):
    return sorted(
        OutboxMessage.objects.filter(payload__booking_id=booking.pk)
        .values_list("topic", flat=True)
        .distinct()
    )


def nothing_held_anywhere():
    assert not Booking.objects.exists()
    assert not Allocation.objects.filter(holder__startswith="booking_item:").exists()
    assert not SeatAllocation.objects.exists()
    assert all(c.held == 0 and c.sold == 0 for c in CapacityCounter.objects.all())


# --- classes and events -------------------------------------------------------------------------


def test_paid_places_are_held_until_the_hold_runs_out(yoga):
    booking = hold_places(yoga["offering"], yoga["session"], 3)
    assert booking.status == BookingStatus.HELD
    assert booking.hold_expires_at == NOW + timedelta(minutes=10)
    assert booking.total_amount == 36
    assert (total_counter(yoga["session"]).held, total_counter(yoga["session"]).sold) == (3, 0)
    assert actions(booking) == ["booking.hold.created"]
    assert "booking.held" in topics(booking)


def test_a_free_class_confirms_at_once(free_class):
    booking = hold_places(free_class["offering"], free_class["session"], 2)
    assert booking.status == BookingStatus.CONFIRMED and booking.hold_expires_at is None
    assert (total_counter(free_class["session"]).held, total_counter(free_class["session"]).sold) == (0, 2)
    assert actions(booking) == ["booking.hold.created", "booking.confirmed"]
    assert "booking.confirmed" in topics(booking)


def test_confirming_turns_held_places_into_sold_ones_and_is_idempotent(yoga):
    booking = hold_places(yoga["offering"], yoga["session"], 2)
    booking_confirm(booking=booking, now=NOW + timedelta(minutes=3))
    again = booking_confirm(booking=booking, now=NOW + timedelta(minutes=4))
    assert again.status == BookingStatus.CONFIRMED
    assert (total_counter(yoga["session"]).held, total_counter(yoga["session"]).sold) == (0, 2)
    assert actions(booking).count("booking.confirmed") == 1


def test_a_retried_request_returns_the_first_booking_never_a_second_hold(yoga):
    who, same_key = someone(), key()
    first = hold_places(yoga["offering"], yoga["session"], 2, who=who, idempotency_key=same_key)
    second = hold_places(yoga["offering"], yoga["session"], 2, who=who, idempotency_key=same_key)
    assert first.pk == second.pk
    assert total_counter(yoga["session"]).held == 2
    with pytest.raises(IdempotencyConflict, match="already used"):
        hold_places(yoga["offering"], yoga["session"], 1, who=someone(), idempotency_key=same_key)


def counters_of(session):
    """Places held per counter: the total (None) and each zone."""
    counters = CapacityCounter.objects.filter(session=session)
    return {(c.zone.name if c.zone else None): c.held for c in counters}


def test_an_event_ticket_gets_a_seat_in_its_zone_and_best_available_when_none_is_chosen(concert):
    booking = hold_places(
        concert["offering"],
        concert["session"],
        tickets=[
            TicketRequest(ticket_type_id=concert["adult"].pk, seat_id=concert["seats"]["B3"].pk),
            TicketRequest(ticket_type_id=concert["adult"].pk, attendee_name="Guest"),
            TicketRequest(ticket_type_id=concert["stand"].pk),
        ],
    )
    items = list(booking.items.order_by("id"))
    assert [i.seat.label if i.seat else None for i in items] == ["B3", "A1", None]
    assert [i.zone.name for i in items] == ["Stalls", "Stalls", "Standing"]
    assert booking.total_amount == 80
    assert counters_of(concert["session"]) == {None: 3, "Stalls": 2, "Standing": 1}


def test_standing_places_come_from_the_zone_and_the_total_together_or_not_at_all(concert):
    standing = [TicketRequest(ticket_type_id=concert["stand"].pk)]
    for n in (6, 6, 6, 6, 5):
        hold_places(concert["offering"], concert["session"], tickets=standing * n)
    assert counters_of(concert["session"]) == {None: 29, "Stalls": 0, "Standing": 29}

    with pytest.raises(SoldOut, match="Only 1 place left in Standing; you asked for 2"):
        hold_places(concert["offering"], concert["session"], tickets=standing * 2)
    assert counters_of(concert["session"]) == {None: 29, "Stalls": 0, "Standing": 29}  # not the total either

    hold_places(concert["offering"], concert["session"], tickets=standing)
    assert counters_of(concert["session"]) == {None: 30, "Stalls": 0, "Standing": 30}
    assert Booking.objects.filter(session=concert["session"]).count() == 6


def test_a_taken_seat_is_refused_and_nothing_is_held(concert):
    a1 = concert["seats"]["A1"]
    hold_places(
        concert["offering"], concert["session"], tickets=[TicketRequest(concert["adult"].pk, seat_id=a1.pk)]
    )
    with pytest.raises(SeatTaken, match="just taken"):
        hold_places(
            concert["offering"],
            concert["session"],
            tickets=[TicketRequest(concert["adult"].pk, seat_id=a1.pk)],
        )
    assert Booking.objects.count() == 1
    assert total_counter(concert["session"]).held == 1


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda y: dict(session=y["session"], now=y["session"].starts_at + timedelta(minutes=1)),
            "already passed",
        ),
        (lambda y: dict(session=y["other_session"]), "not a session of Yoga"),
        (lambda y: dict(session=y["session"], n=5), "at most 4 places at once"),
        (lambda y: dict(session=y["session"], n=0, tickets=[]), "at least one place"),
        (lambda y: dict(session=y["session"], who=CustomerDetails("", "x@example.com")), "your name"),
        (lambda y: dict(session=y["session"], who=CustomerDetails("Ann", "not-an-email")), "email address"),
        (lambda y: dict(session=y["session"], tickets=[TicketRequest(ticket_type_id=1)]), "no ticket types"),
    ],
)
def test_bad_class_requests_are_refused_clearly_and_hold_nothing(yoga, free_class, build, message):
    yoga = {**yoga, "other_session": free_class["session"]}
    args = build(yoga)
    session = args.pop("session")
    with pytest.raises(InvalidBooking, match=message):
        hold_places(yoga["offering"], session, args.pop("n", 1), **args)
    assert not Booking.objects.exists()
    assert total_counter(yoga["session"]).held == 0


def test_a_closed_sales_window_is_refused(yoga):
    yoga["session"].sales_close_at = NOW - timedelta(minutes=1)
    yoga["session"].save()
    with pytest.raises(InvalidBooking, match="has closed"):
        hold_places(yoga["offering"], yoga["session"], 1)
    yoga["session"].sales_close_at, yoga["session"].sales_open_at = None, NOW + timedelta(days=1)
    yoga["session"].save()
    with pytest.raises(InvalidBooking, match="Booking opens"):
        hold_places(yoga["offering"], yoga["session"], 1)
    assert not Booking.objects.exists()


def test_an_unknown_seat_or_wrong_zone_is_refused(concert):
    stand = concert["stand"].pk
    with pytest.raises(InvalidBooking, match="seat does not exist"):
        hold_places(
            concert["offering"],
            concert["session"],
            tickets=[TicketRequest(concert["adult"].pk, seat_id=999999)],
        )
    with pytest.raises(InvalidBooking, match="not valid in that area"):
        hold_places(
            concert["offering"],
            concert["session"],
            tickets=[TicketRequest(stand, zone_id=concert["stalls"].pk)],
        )
    nothing_held_anywhere()


def test_more_places_than_are_left_is_sold_out_with_the_number_left(yoga):
    hold_places(yoga["offering"], yoga["session"], 4)
    hold_places(yoga["offering"], yoga["session"], 4)
    with pytest.raises(SoldOut, match="Only 2 places left; you asked for 3"):
        hold_places(yoga["offering"], yoga["session"], 3)
    assert Booking.objects.count() == 2


# --- appointments -------------------------------------------------------------------------------


def test_an_appointment_hold_allocates_one_free_stylist_with_buffers(salon):
    booking = hold_slot(salon["cut"], at(10))
    [allocation] = Allocation.objects.filter(holder__startswith="booking_item:")
    assert allocation.resource in (salon["ana"], salon["bob"])
    assert (allocation.span.lower, allocation.span.upper) == (at(10), at(11, 15))
    assert booking.status == BookingStatus.HELD and booking.ends_at == at(11)


def test_choosing_a_stylist_takes_that_stylist_or_says_they_are_taken(salon):
    requirement = salon["cut"].requirements.get()
    hold_slot(salon["cut"], at(10), preferred={requirement.pk: salon["ana"].pk})
    with pytest.raises(SlotTaken, match="no longer free"):
        hold_slot(salon["cut"], at(10, 30), preferred={requirement.pk: salon["ana"].pk})
    other = hold_slot(salon["cut"], at(10, 30))  # anyone: Bob is free
    assert Allocation.objects.get(holder=f"booking_item:{other.items.get().pk}").resource == salon["bob"]


@pytest.mark.parametrize(
    ("starts_at", "message"),
    [
        (at(7, day=NOW.date()), "already passed"),
        (at(10, 5), "not one of the start times"),
        (at(10) + timedelta(days=90), "at most 60 days ahead"),
    ],
)
def test_bad_appointment_times_are_refused_and_hold_nothing(salon, starts_at, message):
    with pytest.raises(InvalidBooking, match=message):
        hold_slot(salon["cut"], starts_at)
    nothing_held_anywhere()


def test_a_time_outside_working_hours_is_not_available(salon):
    with pytest.raises(SlotTaken):
        hold_slot(salon["cut"], at(20))
    nothing_held_anywhere()


def test_customers_are_remembered_by_email_whatever_its_case(yoga):
    hold_places(yoga["offering"], yoga["session"], who=CustomerDetails("Ann Lee", "Ann@Example.com"))
    hold_places(
        yoga["offering"], yoga["session"], who=CustomerDetails("Ann Lee", "ann@example.COM", phone="0117")
    )
    assert list(Customer.objects.values_list("name", "phone")) == [("Ann Lee", "0117")]


# --- expiry -------------------------------------------------------------------------------------


def test_an_expired_hold_is_released_by_the_task_at_expiry(yoga):
    booking = hold_places(yoga["offering"], yoga["session"], 2)
    assert booking_expire(booking_id=booking.pk, now=NOW + timedelta(minutes=9)) is False  # not yet
    assert booking_expire(booking_id=booking.pk, now=NOW + timedelta(minutes=10)) is True
    booking.refresh_from_db()
    assert booking.status == BookingStatus.EXPIRED
    assert total_counter(yoga["session"]).held == 0
    assert actions(booking) == ["booking.hold.created", "booking.hold.expired"]


def test_the_sweeper_releases_every_hold_that_ran_out(yoga, salon):
    a = hold_places(yoga["offering"], yoga["session"], 2)
    b = hold_slot(salon["cut"], at(10))
    assert hold_release_expired(now=NOW + timedelta(minutes=11)) == 2
    assert {x.status for x in Booking.objects.filter(pk__in=[a.pk, b.pk])} == {BookingStatus.EXPIRED}
    assert not Allocation.objects.filter(holder__startswith="booking_item:", is_active=True).exists()


def test_an_expired_hold_never_blocks_a_sale_even_when_no_worker_released_it(yoga, salon):
    for _ in range(2):
        hold_places(yoga["offering"], yoga["session"], 4)
    hold_places(yoga["offering"], yoga["session"], 2)  # now sold out, all held
    later = NOW + timedelta(minutes=15)
    booking = hold_places(yoga["offering"], yoga["session"], 4, now=later)  # lazily releases the dead holds
    assert booking.status == BookingStatus.HELD
    assert total_counter(yoga["session"]).held == 4
    assert Booking.objects.filter(status=BookingStatus.EXPIRED).count() == 3
    taken = hold_slot(salon["cut"], at(10), preferred={salon["cut"].requirements.get().pk: salon["ana"].pk})
    again = hold_slot(
        salon["cut"], at(10), now=later, preferred={salon["cut"].requirements.get().pk: salon["ana"].pk}
    )
    assert again.status == BookingStatus.HELD
    taken.refresh_from_db()
    assert taken.status == BookingStatus.EXPIRED


def test_a_payment_after_expiry_books_if_the_places_are_still_free(yoga):
    booking = hold_places(yoga["offering"], yoga["session"], 2)
    booking_expire(booking_id=booking.pk, now=NOW + timedelta(minutes=10))
    confirmed = booking_confirm(booking=booking, now=NOW + timedelta(minutes=12))
    assert confirmed.status == BookingStatus.CONFIRMED
    assert (total_counter(yoga["session"]).held, total_counter(yoga["session"]).sold) == (0, 2)


def test_illegal_transitions_are_refused_with_a_clear_message(yoga):
    from booking.services import booking_cancel

    booking = hold_places(yoga["offering"], yoga["session"], 1)
    booking_cancel(booking=booking, now=NOW, by_customer=True)
    with pytest.raises(IllegalTransition, match="cancelled cannot become confirmed"):
        booking_confirm(booking=booking, now=NOW)
