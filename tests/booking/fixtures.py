"""A small business to book against: a salon with two stylists and a room, a yoga class, a concert."""

from datetime import timedelta

import pytest

from inventory.models import CancellationPolicy, RefundTier
from inventory.services import zone_seat_map_generate
from tests.booking.helpers import NOW, TUESDAY, at
from tests.inventory import factories as make


@pytest.fixture
def flexible():
    policy = CancellationPolicy.objects.create(
        name="Flexible", description="Full refund 24h before, half 2h before"
    )
    RefundTier.objects.create(policy=policy, min_notice=timedelta(hours=24), refund_percent=100)
    RefundTier.objects.create(policy=policy, min_notice=timedelta(hours=2), refund_percent=50)
    return policy


@pytest.fixture
def salon(flexible):
    place = make.location(name="Salon")
    ana = make.resource(at=place, name="Ana", now=NOW)
    bob = make.resource(at=place, name="Bob", now=NOW)
    room = make.resource(at=place, name="Room", kind="room", now=NOW)
    cut = make.appointment(
        at=place,
        needs=[[ana, bob]],
        name="Cut",
        minutes=60,
        interval=15,
        after=15,
        price="40.00",
        cancellation_policy=flexible,
        hold_minutes=10,
    )
    facial = make.appointment(at=place, needs=[[room]], name="Facial", minutes=60, interval=15, price="0.00")
    massage = make.appointment(
        at=place, needs=[[room]], name="Massage", minutes=60, interval=15, price="0.00"
    )
    return {
        "place": place,
        "ana": ana,
        "bob": bob,
        "room": room,
        "cut": cut,
        "facial": facial,
        "massage": massage,
    }


@pytest.fixture
def yoga(flexible):
    studio = make.location(name="Studio")
    offering = make.class_offering(
        at=studio,
        name="Yoga",
        price="12.00",
        cancellation_policy=flexible,
        waitlist_enabled=True,
        max_places_per_booking=4,
    )
    session = make.session(offering=offering, starts_at=at(18), capacity=10, now=NOW)
    later = make.session(
        offering=offering, starts_at=at(18, day=TUESDAY + timedelta(days=7)), capacity=10, now=NOW
    )
    return {"offering": offering, "session": session, "later": later}


@pytest.fixture
def free_class():
    studio = make.location(name="Free studio")
    offering = make.class_offering(at=studio, name="Open session", price="0.00", waitlist_enabled=True)
    return {
        "offering": offering,
        "session": make.session(offering=offering, starts_at=at(19), capacity=5, now=NOW),
    }


@pytest.fixture
def concert(flexible):
    hall = make.location(name="Hall")
    offering = make.event(
        at=hall,
        zones={"Stalls": 0, "Standing": 30},
        tickets={"Adult": ("30.00", ["Stalls"]), "Standing": ("20.00", ["Standing"])},
        cancellation_policy=flexible,
        horizon=timedelta(days=365),
        max_places_per_booking=6,
    )
    stalls = offering.zones.get(name="Stalls")
    zone_seat_map_generate(zone=stalls, rows=2, seats_per_row=5, now=NOW)
    session = make.session(offering=offering, starts_at=at(19, day=TUESDAY + timedelta(days=10)), now=NOW)
    return {
        "offering": offering,
        "session": session,
        "stalls": stalls,
        "standing": offering.zones.get(name="Standing"),
        "adult": offering.ticket_types.get(name="Adult"),
        "stand": offering.ticket_types.get(name="Standing"),
        "seats": {s.label: s for s in stalls.seats.all()},
    }


BOOKING_TOPICS = [
    "booking.held",
    "booking.confirmed",
    "booking.expired",
    "booking.cancelled",
    "booking.rescheduled",
    "booking.awaiting_payment",
    "waitlist.offered",
    "waitlist.joined",
    "booking.payment_failed",
    "booking.refunded",
]


def _subscribe_recorder():
    """Subscribe a do-nothing handler to every booking topic, so tests can see what each change announces.

    Later features subscribe real handlers (emails, tickets, calendars); the recorder makes the test
    independent of which of them exist.
    """
    from core.outbox.registry import outbox_handler

    for topic in BOOKING_TOPICS:
        outbox_handler(topic, name=f"tests.recorder.{topic}")(lambda message, *, now: None)


_subscribe_recorder()
