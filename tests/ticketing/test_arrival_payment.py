"""Pay on arrival at a class or event: the authorised card is charged when the door lets them in."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from booking.models import BookingStatus
from core.outbox.services import outbox_sweep
from payments.models import Payment, PaymentPlan
from payments.services import checkout_prepare, payment_refresh
from tests.booking.helpers import hold_places
from tests.ticketing.helpers import door_list, scan
from ticketing.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def deliver(now, rounds=4):
    for _ in range(rounds):
        outbox_sweep(now=now + timedelta(seconds=1))


def test_checking_in_takes_the_authorised_money_and_is_not_unpaid(stripe_api, yoga):
    now = timezone.now()
    session = yoga["session"]
    session.starts_at, session.ends_at = now + timedelta(minutes=30), now + timedelta(minutes=90)
    session.save()
    PaymentPlan.objects.create(offering=yoga["offering"], kind="on_arrival")
    booking = hold_places(yoga["offering"], session, 2, now=now)
    checkout = checkout_prepare(booking=booking, now=now)
    stripe_api.v1.payment_intents.confirm(
        checkout.payment.stripe_payment_intent_id, {"payment_method": "pm_card_visa"}
    )
    payment_refresh(payment=checkout.payment, now=now)
    deliver(now)
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED and booking.amount_paid == 0
    first, second = Ticket.objects.filter(booking=booking, status="valid").order_by("id")

    outcome = scan(door_list(session), first.payload, at=now)
    assert outcome.scan.result == "valid"  # the card is authorised: nothing to collect at the door
    deliver(now)
    booking.refresh_from_db()
    payment = Payment.objects.get(booking=booking)
    assert payment.status == Payment.Status.SUCCEEDED and booking.amount_paid == Decimal("24.00")

    assert scan(door_list(session), second.payload, at=now).scan.result == "valid"
    deliver(now)
    assert Payment.objects.get(booking=booking).amount_received == 2400  # taken once for the booking
