"""Paying for a booking through Stripe: confirmed in the same transaction that records the payment."""

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections
from django.utils import timezone

from booking.models import Booking, BookingStatus
from booking.services import booking_cancel, booking_expire
from core.audit.selectors import timeline_list_for_subject
from core.outbox.services import outbox_sweep
from payments.models import Payment, PaymentPlan, Refund, WebhookEvent
from payments.services import (
    RefundTooLarge,
    authorization_capture,
    checkout_prepare,
    no_show_fee_charge,
    payment_refresh,
    payment_refund,
    payments_reconcile,
)
from tests.booking.helpers import hold_places, hold_slot, total_counter
from tests.conftest import wait_until
from tests.payments.fixtures import WEBHOOK_SECRET

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def soon_class(yoga, now):
    """The yoga class, moved to three days from now so the clock need not be frozen for Stripe."""
    session = yoga["session"]
    session.starts_at, session.ends_at = now + timedelta(days=3), now + timedelta(days=3, hours=1)
    session.save()
    return yoga


def pay(stripe_api, payment, card="pm_card_visa"):
    """What Stripe.js does in the customer's browser: confirm the intent with their card."""
    if payment.stripe_setup_intent_id:
        return stripe_api.v1.setup_intents.confirm(payment.stripe_setup_intent_id, {"payment_method": card})
    try:
        return stripe_api.v1.payment_intents.confirm(
            payment.stripe_payment_intent_id, {"payment_method": card}
        )
    except Exception as error:  # noqa: BLE001 - a decline is an answer, as in the browser
        return error


def actions(booking):
    return [e.action for e in timeline_list_for_subject(subject=booking)]


def held(soon_class, now, n=2):
    return hold_places(soon_class["offering"], soon_class["session"], n, now=now)


# --- the happy paths ------------------------------------------------------------------------------


def test_full_payment_confirms_the_booking_with_every_stripe_reference(client, stripe_api, soon_class, now):
    booking = held(soon_class, now)
    checkout = checkout_prepare(booking=booking, now=now)
    payment = checkout.payment
    assert (payment.amount, payment.currency, checkout.kind) == (2400, "GBP", "payment")
    assert payment.stripe_payment_intent_id.startswith("pi_") and checkout.client_secret
    pay(stripe_api, payment)

    page = client.get(f"/pay/{_token(booking)}/return/?payment_intent={payment.stripe_payment_intent_id}")
    assert "Confirmed" in page.content.decode()
    booking.refresh_from_db()
    payment.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED and booking.display_status == "Confirmed"
    assert booking.amount_paid == Decimal("24.00")
    assert payment.status == Payment.Status.SUCCEEDED and payment.amount_received == 2400
    assert payment.stripe_charge_id.startswith("ch_")
    assert (total_counter(soon_class["session"]).held, total_counter(soon_class["session"]).sold) == (0, 2)
    assert actions(booking) == [
        "booking.hold.created",
        "payments.intent.created",
        "booking.awaiting_payment",
        "payments.payment.succeeded",
        "booking.confirmed",
    ]


def test_the_checkout_page_shows_the_countdown_the_amount_and_stripes_form(
    client, stripe_settings, soon_class, now
):
    booking = held(soon_class, now)
    page = client.get(f"/pay/{_token(booking)}/").content.decode()
    assert "Pay 24.00 GBP now." in page
    assert 'id="payment-element"' in page and stripe_settings.url + "/js.stripe.com/v3/" in page
    assert 'data-client-secret="pi_' in page and "left" in page


def test_the_webhook_alone_confirms_a_booking_whose_customer_never_came_back(
    stripe_webhooks, stripe_api, soon_class, now
):
    booking = held(soon_class, now)
    payment = checkout_prepare(booking=booking, now=now).payment
    pay(stripe_api, payment)
    wait_until(lambda: Booking.objects.get(pk=booking.pk).status == BookingStatus.CONFIRMED, timeout=20)
    assert WebhookEvent.objects.filter(type="payment_intent.succeeded").count() == 1


def test_a_double_clicked_pay_button_charges_once(stripe_api, soon_class, now):
    booking = held(soon_class, now)
    barrier = threading.Barrier(2)
    checkouts = []

    def open_checkout():
        barrier.wait()
        checkouts.append(checkout_prepare(booking=Booking.objects.get(pk=booking.pk), now=now))
        connections.close_all()

    threads = [threading.Thread(target=open_checkout) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(checkouts) == 2  # both clicks get the payment form, neither an error page
    assert len({c.payment.stripe_payment_intent_id for c in checkouts}) == 1
    assert Payment.objects.filter(booking=booking).count() == 1
    payment = checkouts[0].payment
    pay(stripe_api, payment)
    second = pay(stripe_api, payment)  # the second click
    assert isinstance(second, Exception)
    charges = stripe_api.v1.charges.list({"payment_intent": payment.stripe_payment_intent_id}).data
    assert len([c for c in charges if c.status == "succeeded"]) == 1


# --- failures -------------------------------------------------------------------------------------


def test_a_declined_card_shows_payment_failed_and_another_card_still_books(
    client, stripe_api, soon_class, now
):
    booking = held(soon_class, now)
    payment = checkout_prepare(booking=booking, now=now).payment
    pay(stripe_api, payment, card="pm_card_chargeCustomerFail")
    page = client.get(f"/pay/{_token(booking)}/return/?payment_intent={payment.stripe_payment_intent_id}")
    text = page.content.decode()
    assert "Payment failed" in text and "Try another card" in text
    booking.refresh_from_db()
    assert booking.display_status == "Payment failed"

    again = checkout_prepare(booking=booking, now=now).payment
    assert again.pk == payment.pk  # the same intent, another card
    pay(stripe_api, again)
    payment_refresh(payment=again, now=now)
    booking.refresh_from_db()
    assert booking.display_status == "Confirmed"


def test_a_forged_webhook_is_rejected_and_changes_nothing(client, stripe_settings, soon_class, now):
    booking = held(soon_class, now)
    payment = checkout_prepare(booking=booking, now=now).payment
    event = {
        "id": "evt_forged",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": payment.stripe_payment_intent_id, "object": "payment_intent"}},
    }
    body = json.dumps(event)
    stamp = int(time.time())
    forged = hmac.new(b"not-the-secret", f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
    response = client.post(
        "/stripe/webhook",
        body,
        content_type="application/json",
        headers={"Stripe-Signature": f"t={stamp},v1={forged}"},
    )
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()
    assert Booking.objects.get(pk=booking.pk).is_holding


def _signed(client, event):
    body = json.dumps(event)
    stamp = int(time.time())
    signature = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return client.post(
        "/stripe/webhook",
        body,
        content_type="application/json",
        headers={"Stripe-Signature": f"t={stamp},v1={signature}"},
    )


def test_duplicate_and_out_of_order_webhooks_change_nothing_the_second_time(
    client, stripe_api, soon_class, now
):
    booking = held(soon_class, now)
    payment = checkout_prepare(booking=booking, now=now).payment
    pay(stripe_api, payment)
    intent = {"id": payment.stripe_payment_intent_id, "object": "payment_intent"}
    succeeded = {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": intent}}
    stale_failure = {"id": "evt_0", "type": "payment_intent.payment_failed", "data": {"object": intent}}

    assert _signed(client, succeeded).content == b"processed"
    assert _signed(client, succeeded).content == b"duplicate"
    assert _signed(client, stale_failure).content == b"processed"  # older news, arriving late
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED
    assert actions(booking).count("booking.confirmed") == 1
    assert actions(booking).count("payments.payment.succeeded") == 1


# --- late payments --------------------------------------------------------------------------------


def test_a_payment_after_the_hold_died_still_books_when_places_remain(stripe_api, soon_class, now):
    booking = held(soon_class, now)
    payment = checkout_prepare(booking=booking, now=now).payment
    booking_expire(booking_id=booking.pk, now=now + timedelta(minutes=11))
    pay(stripe_api, payment)
    payment_refresh(payment=payment, now=now + timedelta(minutes=12))
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED and not booking.needs_attention
    assert total_counter(soon_class["session"]).sold == 2


def test_a_payment_after_the_hold_died_and_the_places_went_is_refunded_and_flagged(
    stripe_api, soon_class, now
):
    booking = held(soon_class, now, n=4)
    payment = checkout_prepare(booking=booking, now=now).payment
    later = now + timedelta(minutes=11)
    booking_expire(booking_id=booking.pk, now=later)
    for _ in range(2):
        hold_places(soon_class["offering"], soon_class["session"], 4, now=later)  # others take the places
    pay(stripe_api, payment)
    payment_refresh(payment=payment, now=later)
    outbox_sweep(now=later)  # the worker gives the money back

    booking.refresh_from_db()
    payment.refresh_from_db()
    assert booking.needs_attention and "could not be confirmed" in booking.attention_reason
    assert payment.amount_refunded == payment.amount_received == 4800
    assert booking.display_status == "Refunded (fully)" and booking.status == BookingStatus.REFUNDED
    assert "payments.late_payment.returned" in actions(booking)
    assert Refund.objects.get(payment=payment).stripe_refund_id.startswith("re_")


# --- refunds --------------------------------------------------------------------------------------


def test_partial_refunds_never_exceed_what_was_paid(stripe_api, soon_class, now):
    booking = held(soon_class, now)
    payment = checkout_prepare(booking=booking, now=now).payment
    pay(stripe_api, payment)
    payment_refresh(payment=payment, now=now)
    with pytest.raises(RefundTooLarge, match=r"At most 24.00 GBP"):
        payment_refund(
            booking=booking, amount=Decimal("30.00"), reason="goodwill", now=now, idempotency_key="r1"
        )
    payment_refund(booking=booking, amount=Decimal("10.00"), reason="goodwill", now=now, idempotency_key="r2")
    booking.refresh_from_db()
    assert booking.display_status == "Refunded (partially)" and booking.amount_refunded == Decimal("10.00")
    payment_refund(booking=booking, amount=Decimal("10.00"), reason="again", now=now, idempotency_key="r2")
    assert Refund.objects.count() == 1  # the same request twice refunds once
    with pytest.raises(RefundTooLarge, match=r"At most 14.00 GBP"):
        payment_refund(booking=booking, amount=Decimal("14.01"), reason="more", now=now, idempotency_key="r3")
    payment_refund(booking=booking, amount=Decimal("14.00"), reason="rest", now=now, idempotency_key="r4")
    booking.refresh_from_db()
    assert booking.display_status == "Refunded (fully)"


def test_a_customer_cancellation_refunds_what_the_policy_gives_back(stripe_api, soon_class, now):
    booking = held(soon_class, now)
    payment = checkout_prepare(booking=booking, now=now).payment
    pay(stripe_api, payment)
    payment_refresh(payment=payment, now=now)
    cancelled_at = booking.starts_at - timedelta(hours=10)  # between 2 h and 24 h ahead: half back
    booking_cancel(booking=booking, now=cancelled_at, by_customer=True)
    outbox_sweep(now=cancelled_at)
    booking.refresh_from_db()
    assert booking.amount_refunded == Decimal("12.00")
    assert booking.display_status == "Refunded (partially)"
    assert [r.amount for r in Refund.objects.all()] == [1200]


# --- plans ----------------------------------------------------------------------------------------


def test_a_deposit_is_taken_now_and_the_balance_is_due_later(stripe_api, soon_class, now):
    PaymentPlan.objects.create(
        offering=soon_class["offering"], kind="deposit", deposit_percent=25, balance_due_days_before=1
    )
    booking = held(soon_class, now)
    checkout = checkout_prepare(booking=booking, now=now)
    assert checkout.terms.lines[:2] == [
        "Pay a deposit of 6.00 GBP now.",
        f"Pay the balance of 18.00 GBP by {(booking.starts_at - timedelta(days=1)):%d %b %Y}; "
        "we email you a link to pay it.",
    ]
    pay(stripe_api, checkout.payment)
    payment_refresh(payment=checkout.payment, now=now)
    booking.refresh_from_db()
    assert booking.display_status == "Confirmed" and booking.amount_due == Decimal("18.00")

    balance = checkout_prepare(booking=booking, now=now)  # the link in the balance-due email
    assert (balance.payment.purpose, balance.payment.amount) == (Payment.Purpose.BALANCE, 1800)
    pay(stripe_api, balance.payment)
    payment_refresh(payment=balance.payment, now=now)
    booking.refresh_from_db()
    assert (booking.amount_paid, booking.amount_due) == (Decimal("24.00"), Decimal("0.00"))


def test_pay_on_arrival_authorises_now_and_captures_at_check_in(stripe_api, soon_class, now):
    PaymentPlan.objects.create(offering=soon_class["offering"], kind="on_arrival")
    booking = held(soon_class, now)
    checkout = checkout_prepare(booking=booking, now=now)
    assert checkout.terms.method == "authorize" and "Nothing is taken now" in checkout.terms.lines[0]
    pay(stripe_api, checkout.payment)
    payment = payment_refresh(payment=checkout.payment, now=now)
    booking.refresh_from_db()
    assert (payment.status, payment.amount_capturable) == (Payment.Status.AUTHORIZED, 2400)
    assert booking.display_status == "Confirmed" and booking.amount_paid == 0
    captured = authorization_capture(booking=booking, now=now, amount=Decimal("20.00"))
    booking.refresh_from_db()
    assert captured.amount_received == 2000 and booking.amount_paid == Decimal("20.00")


def test_pay_on_arrival_far_ahead_saves_the_card_and_a_no_show_fee_can_be_charged(
    stripe_api, soon_class, now
):
    session = soon_class["session"]
    session.starts_at, session.ends_at = now + timedelta(days=30), now + timedelta(days=30, hours=1)
    session.save()
    soon_class["offering"].horizon = timedelta(days=90)
    soon_class["offering"].save()
    PaymentPlan.objects.create(
        offering=soon_class["offering"], kind="on_arrival", no_show_fee=Decimal("15.00")
    )
    booking = held(soon_class, now)
    checkout = checkout_prepare(booking=booking, now=now)
    assert (checkout.kind, checkout.payment.purpose) == ("setup", Payment.Purpose.CARD_SETUP)
    pay(stripe_api, checkout.payment)
    payment_refresh(payment=checkout.payment, now=now)
    booking.refresh_from_db()
    assert booking.display_status == "Confirmed"
    fee = no_show_fee_charge(booking=booking, now=now)
    assert (fee.status, fee.amount_received) == (Payment.Status.SUCCEEDED, 1500)


def test_an_appointment_is_paid_like_a_class(stripe_api, salon, now):
    cut = salon["cut"]
    starts = (
        (now + timedelta(days=2))
        .astimezone(cut.location.tz)
        .replace(hour=10, minute=0, second=0, microsecond=0)
    )
    booking = hold_slot(cut, starts, now=now)
    payment = checkout_prepare(booking=booking, now=now).payment
    pay(stripe_api, payment)
    payment_refresh(payment=payment, now=now)
    booking.refresh_from_db()
    assert booking.display_status == "Confirmed" and booking.amount_paid == Decimal("40.00")


# --- recovery -------------------------------------------------------------------------------------


def test_a_crash_between_payment_and_confirmation_is_recovered_by_reconciliation(stripe_api, soon_class, now):
    booking = held(soon_class, now)
    payment = checkout_prepare(booking=booking, now=now).payment
    pay(stripe_api, payment)  # paid at Stripe; we never heard (no webhook, no return page)
    assert Booking.objects.get(pk=booking.pk).is_holding
    drift = payments_reconcile(now=now, since=now - timedelta(hours=1))
    assert [d.stripe_id for d in drift] == [payment.stripe_payment_intent_id]
    assert Booking.objects.get(pk=booking.pk).status == BookingStatus.CONFIRMED


def test_an_intent_created_before_a_crash_is_found_by_its_metadata(stripe_api, soon_class, now):
    booking = held(soon_class, now)
    checkout = checkout_prepare(booking=booking, now=now)
    Payment.objects.filter(pk=checkout.payment.pk).update(stripe_payment_intent_id=None, client_secret="")
    again = checkout_prepare(booking=booking, now=now)  # the same idempotency key: the same intent
    assert again.payment.stripe_payment_intent_id == checkout.payment.stripe_payment_intent_id


def _token(booking):
    from booking.selectors import booking_manage_token

    return booking_manage_token(booking=booking)


# --- staff ----------------------------------------------------------------------------------------


def test_staff_refund_from_admin_and_see_every_stripe_reference(client, stripe_api, soon_class, now):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_superuser("maria", "m@example.com", "pw"))
    booking = held(soon_class, now)
    payment = checkout_prepare(booking=booking, now=now).payment
    pay(stripe_api, payment)
    payment_refresh(payment=payment, now=now)

    page = client.get(f"/admin/booking/booking/{booking.pk}/change/").content.decode()
    payment.refresh_from_db()
    for stripe_id in (
        payment.stripe_payment_intent_id,
        payment.stripe_charge_id,
        payment.stripe_customer_id or "",
        payment.stripe_payment_method_id,
    ):
        assert stripe_id in page

    form = client.get(f"/admin/booking/booking/{booking.pk}/refund/").content.decode()
    token = form.split('name="idempotency_key" value="')[1].split('"')[0]
    too_much = client.post(
        f"/admin/booking/booking/{booking.pk}/refund/",
        {"amount": "30.00", "reason": "goodwill", "idempotency_key": token},
    )
    assert "At most 24.00 GBP can be refunded." in too_much.content.decode()
    done = client.post(
        f"/admin/booking/booking/{booking.pk}/refund/",
        {"amount": "5.00", "reason": "late start", "idempotency_key": token},
        follow=True,
    )
    assert "Refunded 5.00 GBP." in done.content.decode()
    refund = Refund.objects.get()
    assert refund.requested_by == "maria" and refund.stripe_refund_id in done.content.decode()
    assert Booking.objects.get(pk=booking.pk).display_status == "Refunded (partially)"
