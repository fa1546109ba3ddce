"""Who may do what, enforced on the server: each role tries each staff action with a real request.

Managers may do everything; the front desk everything about bookings except refunds above the
front-desk limit and the reports; door staff only check tickets in; a staff account without a role
nothing. A refused request changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from booking.models import Booking
from booking.services import booking_flag_attention
from core.audit.models import TimelineEntry
from core.outbox.services import outbox_sweep
from core.roles import DOOR_STAFF, FRONT_DESK, MANAGER
from payments.models import Payment, PaymentPlan, Refund
from payments.services import checkout_prepare, payment_refresh
from tests.booking.helpers import hold_places
from ticketing.models import Ticket

pytestmark = pytest.mark.django_db

ROLES = {"manager": MANAGER, "front desk": FRONT_DESK, "door staff": DOOR_STAFF, "no role": None}


def staff_user(role: str):
    user = get_user_model().objects.create_user(
        role.replace(" ", "-"), password="pw", is_staff=role in ("manager", "front desk", "no role")
    )
    if ROLES[role]:
        user.groups.add(Group.objects.get(name=ROLES[role]))
    return user


def paid_booking(stripe_api, soon, now, *, plan: str | None = None) -> Booking:
    if plan:
        PaymentPlan.objects.create(offering=soon["offering"], kind=plan)
    booking = hold_places(soon["offering"], soon["session"], 2, now=now)
    payment = checkout_prepare(booking=booking, now=now).payment
    stripe_api.v1.payment_intents.confirm(
        payment.stripe_payment_intent_id, {"payment_method": "pm_card_visa"}
    )
    payment_refresh(payment=payment, now=now)
    outbox_sweep(now=now)  # tickets issued, emails sent
    booking.refresh_from_db()
    assert booking.status == "confirmed"
    return booking


@dataclass
class Attempt:
    response: object
    done: bool


def act(client, booking, slug, data) -> object:
    return client.post(f"/admin/booking/booking/{booking.pk}/act/{slug}/", data)


def refund(client, booking, amount: str):
    form = client.get(f"/admin/booking/booking/{booking.pk}/refund/")
    token = (
        form.content.decode().split('name="idempotency_key" value="')[1].split('"')[0]
        if form.status_code == 200
        else "x"
    )
    return client.post(
        f"/admin/booking/booking/{booking.pk}/refund/",
        {"amount": amount, "reason": "goodwill", "idempotency_key": token},
    )


# Each action: what it takes to try it, and how to tell it happened.


def try_cancel(client, stripe_api, soon, now):
    booking = paid_booking(stripe_api, soon, now)
    response = act(client, booking, "cancel", {"refund": "on", "reason": "ill"})
    return Attempt(response, Booking.objects.get(pk=booking.pk).status == "cancelled")


def try_reschedule(client, stripe_api, soon, now):
    booking = paid_booking(stripe_api, soon, now)
    response = act(client, booking, "reschedule", {"to": f"session:{soon['later'].pk}"})
    return Attempt(response, Booking.objects.get(pk=booking.pk).session_id == soon["later"].pk)


def try_resend(client, stripe_api, soon, now):
    booking = paid_booking(stripe_api, soon, now)
    response = act(client, booking, "resend", {})
    return Attempt(response, TimelineEntry.objects.filter(action="booking.confirmation.resent").exists())


def try_no_show(client, stripe_api, soon, now):
    booking = paid_booking(stripe_api, soon, now)
    with time_machine.travel(now + timedelta(days=3, hours=2)):  # the class has been and gone
        response = act(client, booking, "no-show", {})
    return Attempt(response, Booking.objects.get(pk=booking.pk).status == "no_show")


def try_correct(client, stripe_api, soon, now):
    booking = paid_booking(stripe_api, soon, now)
    data = {"name": "Grace Hopper", "email": booking.customer.email, "phone": "+44 20 7946 0000"}
    response = act(client, booking, "correct", data)
    return Attempt(response, Booking.objects.get(pk=booking.pk).customer.name == "Grace Hopper")


def try_resolve(client, stripe_api, soon, now):
    booking = paid_booking(stripe_api, soon, now)
    booking_flag_attention(booking=booking, now=now, reason="Paid twice?")
    response = act(client, booking, "resolve", {"note": "Checked in Stripe: paid once."})
    return Attempt(response, not Booking.objects.get(pk=booking.pk).needs_attention)


def try_replace_ticket(client, stripe_api, soon, now):
    booking = paid_booking(stripe_api, soon, now)
    ticket = Ticket.objects.filter(booking=booking, status="valid").first()
    response = act(client, booking, "replace-ticket", {"ticket": ticket.pk, "reason": "lost phone"})
    return Attempt(response, Ticket.objects.get(pk=ticket.pk).status == "revoked")


def try_capture(client, stripe_api, soon, now):
    booking = paid_booking(stripe_api, soon, now, plan="on_arrival")
    response = act(client, booking, "capture", {"amount": ""})
    return Attempt(response, Booking.objects.get(pk=booking.pk).amount_paid == Decimal("24.00"))


def try_release(client, stripe_api, soon, now):
    booking = paid_booking(stripe_api, soon, now, plan="on_arrival")
    response = act(client, booking, "release", {})
    return Attempt(response, Payment.objects.get(booking=booking).status == "canceled")


def try_refund_within_limit(client, stripe_api, soon, now):
    booking = paid_booking(stripe_api, soon, now)
    return Attempt(refund(client, booking, "5.00"), Refund.objects.filter(payment__booking=booking).exists())


def try_refund_over_limit(client, stripe_api, soon, now):
    booking = paid_booking(stripe_api, soon, now)
    return Attempt(refund(client, booking, "20.00"), Refund.objects.filter(payment__booking=booking).exists())


def try_door(client, stripe_api, soon, now):
    response = client.post(
        "/door/api/devices", json.dumps({"name": "Front door"}), content_type="application/json"
    )
    return Attempt(response, response.status_code == 201)


ACTIONS = {
    "cancel": try_cancel,
    "reschedule": try_reschedule,
    "resend confirmation": try_resend,
    "mark no-show": try_no_show,
    "correct details": try_correct,
    "resolve attention": try_resolve,
    "replacement ticket": try_replace_ticket,
    "capture authorisation": try_capture,
    "release authorisation": try_release,
    "refund within the limit": try_refund_within_limit,
    "refund over the limit": try_refund_over_limit,
    "check tickets in at the door": try_door,
}
ALLOWED = {
    "manager": set(ACTIONS),
    "front desk": set(ACTIONS) - {"refund over the limit"},
    "door staff": {"check tickets in at the door"},
    "no role": set(),
}


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("role", list(ROLES))
def test_each_role_may_do_only_what_it_is_allowed(role, action, client, stripe_api, soon, now, settings):
    settings.FRONT_DESK_REFUND_LIMIT = Decimal("10.00")
    client.force_login(staff_user(role))
    attempt = ACTIONS[action](client, stripe_api, soon, now)
    if action in ALLOWED[role]:
        assert attempt.done, f"{role} could not {action}: {attempt.response.status_code}"
    else:
        assert not attempt.done, f"{role} was let {action}"
        assert attempt.response.status_code in (200, 302, 401, 403)
        if attempt.response.status_code == 302:  # not staff: sent to sign in, not to the booking
            assert "/login/" in attempt.response.url
