"""Transfers and resale under the organiser's rules, paid through the Stripe stand-in.

A transfer hands the ticket to someone else (new code, old one revoked); a fee, if the organiser
charges one, is paid on the usual checkout page before the ticket moves. A resale is bought like any
booking: the buyer's payment moves the place to them, revokes the seller's code and refunds the
seller, and both bookings' timelines tell the story.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from booking.models import BookingCharge, BookingStatus
from booking.selectors import booking_manage_token
from booking.services import CustomerDetails, booking_cancel, booking_expire
from core.audit.selectors import timeline_list_for_subject
from core.outbox.services import outbox_sweep
from inventory.models import CapacityCounter
from payments.models import Refund
from payments.services import checkout_prepare, payment_refresh
from tests.booking.helpers import hold_places, someone
from tests.payments.fixtures import WEBHOOK_SECRET  # noqa: F401 - the stand-in's fixtures are shared
from tests.ticketing.helpers import adults
from ticketing.models import ResaleListing, Ticket, TicketPolicy, TicketTransfer
from ticketing.services import (
    InvalidRequest,
    NotAllowed,
    resale_buy,
    resale_list,
    resale_withdraw,
    ticket_transfer,
    ticket_transfer_cancel,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def gig(concert, now):
    """The concert moved to ten days from now (Stripe's clock is real), with the organiser's rules."""
    session = concert["session"]
    session.starts_at, session.ends_at = now + timedelta(days=10), now + timedelta(days=10, hours=2)
    session.save()
    policy = TicketPolicy.objects.create(
        offering=concert["offering"],
        transfers_allowed=True,
        transfer_until=timedelta(hours=48),
        name_change_allowed=True,
        transfer_fee=Decimal("0.00"),
        resale_allowed=True,
        resale_cap_percent=100,
    )
    return {**concert, "policy": policy}


def deliver(now, rounds=5):
    for _ in range(rounds):
        outbox_sweep(now=now + timedelta(seconds=1))


def pay(stripe_api, booking, now):
    """The customer pays what the checkout page asks (Stripe.js confirms the intent), and we hear of it."""
    checkout = checkout_prepare(booking=booking, now=now)
    stripe_api.v1.payment_intents.confirm(
        checkout.payment.stripe_payment_intent_id, {"payment_method": "pm_card_visa"}
    )
    payment_refresh(payment=checkout.payment, now=now)
    deliver(now)
    booking.refresh_from_db()
    return checkout


def bought(stripe_api, gig, now, n=1, who=None):
    booking = hold_places(gig["offering"], gig["session"], now=now, tickets=adults(gig, n), who=who)
    pay(stripe_api, booking, now)
    assert booking.status == BookingStatus.CONFIRMED
    return booking, list(Ticket.objects.filter(booking=booking, status="valid").order_by("id"))


def actions(booking):
    return [e.action for e in timeline_list_for_subject(subject=booking)]


def test_a_free_transfer_sends_a_new_ticket_and_stops_the_old_code(stripe_api, gig, now, inbox):
    booking, [ticket] = bought(stripe_api, gig, now)
    transfer = ticket_transfer(ticket=ticket, to_name="Dana Friend", to_email="dana@example.com", now=now)
    deliver(now)

    ticket.refresh_from_db()
    assert transfer.status == TicketTransfer.Status.DONE and ticket.status == "revoked"
    new = transfer.new_ticket
    assert (new.holder_name, new.holder_email, new.seat_id) == (
        "Dana Friend",
        "dana@example.com",
        ticket.seat_id,
    )
    [email] = [m for m in inbox.messages if m["To"] == "dana@example.com"]
    text = email.get_body(("plain",)).get_content()
    assert "sent you a ticket" in text and new.code in text
    assert booking_manage_token(booking=booking) not in text  # the friend cannot manage the booking
    assert {"ticketing.transfer.requested", "ticketing.transfer.done", "ticketing.tickets.revoked"} <= set(
        actions(booking)
    )


def test_the_organisers_rules_are_enforced_and_a_refused_transfer_changes_nothing(stripe_api, gig, now):
    _, [ticket] = bought(stripe_api, gig, now)
    policy = gig["policy"]

    with pytest.raises(InvalidRequest, match="email"):
        ticket_transfer(ticket=ticket, to_name="Dana", to_email="not-an-email", now=now)

    policy.name_change_allowed = False
    policy.save()
    with pytest.raises(NotAllowed, match="personal"):
        ticket_transfer(ticket=ticket, to_name="Dana", to_email="dana@example.com", now=now)

    policy.transfers_allowed = False
    policy.save()
    with pytest.raises(NotAllowed, match="does not allow"):
        ticket_transfer(ticket=ticket, to_name=ticket.holder_name, to_email="me@example.org", now=now)

    policy.transfers_allowed = True
    policy.save()
    too_late = gig["session"].starts_at - timedelta(hours=47)
    with pytest.raises(NotAllowed, match="closed 2 days before"):
        ticket_transfer(ticket=ticket, to_name=ticket.holder_name, to_email="me@example.org", now=too_late)

    ticket.refresh_from_db()
    assert ticket.status == "valid" and not TicketTransfer.objects.exists()


def test_a_transfer_with_a_fee_happens_once_the_fee_is_paid(stripe_api, gig, now):
    gig["policy"].transfer_fee = Decimal("2.50")
    gig["policy"].save()
    booking, [ticket] = bought(stripe_api, gig, now)
    paid_before = booking.amount_paid

    transfer = ticket_transfer(ticket=ticket, to_name="Dana Friend", to_email="dana@example.com", now=now)
    assert transfer.status == TicketTransfer.Status.AWAITING_FEE
    ticket.refresh_from_db()
    assert ticket.status == "valid"  # nothing moves until the fee is paid

    checkout = pay(stripe_api, booking, now)
    assert checkout.payment.amount == 250 and "Transfer of ticket" in checkout.terms.lines[0]
    transfer.refresh_from_db()
    ticket.refresh_from_db()
    assert transfer.status == TicketTransfer.Status.DONE and ticket.status == "revoked"
    assert transfer.new_ticket.holder_name == "Dana Friend"
    assert booking.amount_paid == paid_before + Decimal("2.50")
    assert booking.total_amount == paid_before + Decimal("2.50") and booking.amount_due == 0
    assert "booking.charge.paid" in actions(booking)


def test_a_transfer_waiting_for_its_fee_can_be_called_off(stripe_api, gig, now, client):
    gig["policy"].transfer_fee = Decimal("2.50")
    gig["policy"].save()
    booking, [ticket] = bought(stripe_api, gig, now)
    transfer = ticket_transfer(ticket=ticket, to_name="Dana Friend", to_email="dana@example.com", now=now)
    token = booking_manage_token(booking=booking)
    assert "Transfer of ticket" in client.get(f"/b/{token}/").content.decode()  # the fee shows as due

    ticket_transfer_cancel(transfer=transfer, now=now)
    transfer.refresh_from_db()
    ticket.refresh_from_db()
    assert transfer.status == TicketTransfer.Status.CANCELLED and ticket.status == "valid"
    assert BookingCharge.objects.get().status == BookingCharge.Status.CANCELLED
    assert "Pay now" not in client.get(f"/b/{token}/").content.decode()


def test_resale_moves_the_place_to_the_buyer_and_refunds_the_seller(stripe_api, gig, now, inbox, client):
    seller, [ticket] = bought(stripe_api, gig, now)
    sold_before = CapacityCounter.objects.get(session=gig["session"], zone=None, ticket_type=None).sold

    with pytest.raises(InvalidRequest, match=r"caps resale at 30\.00"):
        resale_list(ticket=ticket, price=Decimal("45.00"), now=now)
    listing = resale_list(ticket=ticket, price=Decimal("25.00"), now=now)

    buyer = resale_buy(
        listing=listing,
        customer=CustomerDetails("Rob Buyer", "rob@example.com"),
        idempotency_key="k1",
        now=now,
    )
    assert buyer.status == BookingStatus.HELD and buyer.total_amount == Decimal("25.00")
    with pytest.raises(NotAllowed, match="Someone else"):
        resale_buy(listing=listing, customer=someone(), idempotency_key="k2", now=now)

    checkout = pay(stripe_api, buyer, now)
    assert checkout.payment.amount == 2500  # in full, whatever the event's payment plan
    ticket.refresh_from_db()
    listing.refresh_from_db()
    [bought_ticket] = Ticket.objects.filter(booking=buyer, status="valid")
    assert buyer.status == BookingStatus.CONFIRMED and listing.status == ResaleListing.Status.SOLD
    assert ticket.status == "revoked" and ticket.revoke_reason == "resold"
    assert bought_ticket.holder_name == "Rob Buyer" and bought_ticket.seat_id == ticket.seat_id
    [refund] = Refund.objects.filter(payment__booking=seller)
    assert refund.amount == 2500 and refund.reason == "Ticket resold through the platform"
    seller.refresh_from_db()
    assert seller.amount_refunded == Decimal("25.00") and seller.status == BookingStatus.CONFIRMED
    assert (
        CapacityCounter.objects.get(session=gig["session"], zone=None, ticket_type=None).sold == sold_before
    )
    assert {"ticketing.resale.listed", "ticketing.resale.reserved", "ticketing.resale.sold"} <= set(
        actions(seller)
    )
    assert {"ticketing.resale.buying", "ticketing.resale.bought", "booking.confirmed"} <= set(actions(buyer))
    assert any("was resold" in str(m["subject"]) for m in inbox.messages if m["To"] == seller.customer.email)

    seller_page = client.get(f"/b/{booking_manage_token(booking=seller)}/tickets/").content.decode()
    assert f"Ticket {ticket.code}" in seller_page and "was resold for 25.00 GBP" in seller_page

    # The seller cancelling what is left of their booking does not free the place they sold.
    booking_cancel(booking=seller, now=now, by_customer=True)
    assert (
        CapacityCounter.objects.get(session=gig["session"], zone=None, ticket_type=None).sold == sold_before
    )


def test_a_resale_buyer_who_does_not_pay_puts_the_ticket_back_on_sale(stripe_api, gig, now):
    _, [ticket] = bought(stripe_api, gig, now)
    listing = resale_list(ticket=ticket, price=Decimal("20.00"), now=now)
    buyer = resale_buy(listing=listing, customer=someone(), idempotency_key="k1", now=now)
    with pytest.raises(NotAllowed, match="paying for this ticket"):
        resale_withdraw(listing=listing, now=now)

    later = buyer.hold_expires_at + timedelta(seconds=1)
    booking_expire(booking_id=buyer.pk, now=later)
    deliver(later)
    listing.refresh_from_db()
    ticket.refresh_from_db()
    assert listing.status == ResaleListing.Status.LISTED and listing.buyer_booking is None
    assert ticket.status == "valid"


def test_a_seller_who_cancels_takes_the_ticket_off_sale(stripe_api, gig, now):
    seller, [ticket] = bought(stripe_api, gig, now)
    listing = resale_list(ticket=ticket, price=Decimal("20.00"), now=now)
    booking_cancel(booking=seller, now=now, by_customer=True)
    deliver(now)
    listing.refresh_from_db()
    assert listing.status == ResaleListing.Status.WITHDRAWN


def test_resale_is_off_unless_the_organiser_allows_it(stripe_api, gig, now):
    gig["policy"].resale_allowed = False
    gig["policy"].save()
    _, [ticket] = bought(stripe_api, gig, now)
    with pytest.raises(NotAllowed, match="does not allow resale"):
        resale_list(ticket=ticket, price=Decimal("20.00"), now=now)


def test_the_pages_a_fan_uses_to_transfer_resell_and_buy(stripe_api, gig, now, client):
    booking, [ticket] = bought(stripe_api, gig, now)
    token = booking_manage_token(booking=booking)
    page = client.get(f"/b/{token}/tickets/").content.decode()
    assert "Transfer to someone else" in page and "Sell (up to 30.00 GBP)" in page

    refused = client.post(f"/b/{token}/tickets/{ticket.code}/resale/", {"price": "31.00"})
    assert refused.status_code == 400 and not ResaleListing.objects.exists()
    assert client.post(f"/b/{token}/tickets/{ticket.code}/resale/", {"price": "28.00"}).status_code == 303

    offering_page = client.get(f"/o/{gig['offering'].slug}/").content.decode()
    assert "Resale tickets: 1 from 28.00 GBP" in offering_page
    listing = ResaleListing.objects.get()
    form = client.get(f"/resale/{gig['session'].pk}/{listing.pk}/buy/")
    assert form.status_code == 200
    bought_it = client.post(
        f"/resale/{gig['session'].pk}/{listing.pk}/buy/",
        {"name": "Rob Buyer", "email": "rob@example.com", "idempotency_key": "buy-1"},
    )
    assert bought_it.status_code == 303 and bought_it["Location"].startswith("/pay/")

    other, [other_ticket] = bought(stripe_api, gig, now)
    other_token = booking_manage_token(booking=other)
    sent = client.post(
        f"/b/{other_token}/tickets/{other_ticket.code}/transfer/",
        {"to_name": "Dana Friend", "to_email": "dana@example.com"},
    )
    assert sent.status_code == 303
    assert Ticket.objects.get(booking=other, status="valid").holder_name == "Dana Friend"
