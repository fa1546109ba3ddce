"""Reselling a place: listing, withdrawing, buying (a hold on the buyer's side) and completing once
the buyer has paid, or releasing the listing if they did not. Locks the listing, then the bookings.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from booking.locks import lock_booking
from booking.models import Booking, BookingStatus
from booking.services import (
    CustomerDetails,
    booking_hold_resale,
)
from booking.services.emails import email_enqueue
from core.transactions import service_transaction
from ticketing import timeline
from ticketing.locks import lock_listing
from ticketing.models import (
    ResaleListing,
    Ticket,
    TicketTransfer,
)
from ticketing.selectors import (
    policy_for,
    ticket_face_value,
)
from ticketing.services.errors import InvalidRequest, NotAllowed
from ticketing.services.tickets import _sync_locked


def resale_list(*, ticket: Ticket, price: Decimal, now: datetime) -> ResaleListing:
    """Offer a ticket for resale through the platform, at no more than the organiser's cap.

    :raises NotAllowed: resale is off for this event, the ticket is not fully paid, or it has started.
    :raises InvalidRequest: the price is above the cap or below zero.
    """
    booking = ticket.booking
    policy = policy_for(offering=booking.offering)
    if not policy.resale_allowed:
        raise NotAllowed("The organiser does not allow resale of tickets for this event.")
    face = ticket_face_value(ticket=ticket)
    cap = (face * policy.resale_cap_percent / 100).quantize(Decimal("0.01"))
    if price <= 0:
        raise InvalidRequest("Set a price above zero. To give the ticket away, transfer it instead.")
    if price > cap:
        raise InvalidRequest(f"The organiser caps resale at {cap} {booking.currency} for this ticket.")
    if booking.starts_at <= now:
        raise NotAllowed("This has already started, so the ticket can no longer be resold.")
    with service_transaction():
        booking = lock_booking(booking_id=ticket.booking_id)
        ticket = Ticket.objects.get(pk=ticket.pk)
        if ticket.status != Ticket.Status.VALID or booking.status != BookingStatus.CONFIRMED:
            raise NotAllowed("This ticket is no longer valid.")
        if booking.amount_due > 0:
            raise NotAllowed("Only a ticket that is paid in full can be resold.")
        if ticket.transfers.filter(status=TicketTransfer.Status.AWAITING_FEE).exists():
            raise NotAllowed("A transfer of this ticket is waiting for its fee; cancel it first.")
        open_listing = ticket.listings.filter(status__in=["listed", "reserved"]).first()
        if open_listing is not None:
            return open_listing
        listing = ResaleListing.objects.create(
            ticket=ticket, session_id=ticket.session_id, price=price, listed_at=now, updated_at=now
        )
        ticket.booking = booking
        timeline.resale_listed(booking, now=now, listing=listing)
    return listing


def resale_withdraw(*, listing: ResaleListing, now: datetime) -> ResaleListing:
    """:raises NotAllowed: a buyer is paying for it right now."""
    with service_transaction():
        booking = lock_booking(booking_id=listing.ticket.booking_id)
        listing = lock_listing(listing_id=listing.pk)
        if listing.status == ResaleListing.Status.RESERVED:
            raise NotAllowed("Someone is paying for this ticket right now; try again in a few minutes.")
        if listing.status == ResaleListing.Status.LISTED:
            listing.status = ResaleListing.Status.WITHDRAWN
            listing.updated_at = now
            listing.save(update_fields=["status", "updated_at"])
            timeline.resale_withdrawn(booking, now=now, listing=listing, reason="withdrawn by the seller")
    return listing


def resale_buy(
    *, listing: ResaleListing, customer: CustomerDetails, idempotency_key: str, now: datetime
) -> Booking:
    """Hold a resale ticket for a buyer, who then pays as for any booking (in full).

    The seller's place changes hands only when the buyer's payment confirms their booking; until
    then the listing is reserved for them, and goes back on sale if their hold runs out.

    :raises NotAllowed: someone else is buying it, or it is no longer for sale.
    """
    with service_transaction():
        listing = lock_listing(listing_id=listing.pk)
        if listing.status == ResaleListing.Status.RESERVED and listing.buyer_booking is not None:
            if listing.buyer_booking.idempotency_key == idempotency_key:
                return listing.buyer_booking  # the same form sent twice
            raise NotAllowed("Someone else is buying this ticket right now. Try another one.")
        if listing.status != ResaleListing.Status.LISTED:
            raise NotAllowed("This ticket is no longer for sale.")
        ticket = listing.ticket
        buyer = booking_hold_resale(
            source_item=ticket.booking_item,
            price=listing.price,
            customer=customer,
            idempotency_key=idempotency_key,
            now=now,
        )
        listing.status = ResaleListing.Status.RESERVED
        listing.buyer_booking = buyer
        listing.updated_at = now
        listing.save(update_fields=["status", "buyer_booking", "updated_at"])
        timeline.resale_reserved(ticket.booking, buyer, now=now, listing=listing)
    return buyer


def resale_release(*, buyer_booking_id: int, now: datetime) -> int:
    """The buyer's hold ended unpaid (expired or cancelled): the ticket goes back on sale."""
    released = 0
    for listing in ResaleListing.objects.filter(buyer_booking_id=buyer_booking_id, status="reserved"):
        with service_transaction():
            listing = lock_listing(listing_id=listing.pk)
            if (
                listing.status != ResaleListing.Status.RESERVED
                or listing.buyer_booking_id != buyer_booking_id
            ):
                continue
            buyer = Booking.objects.get(pk=buyer_booking_id)
            listing.status = ResaleListing.Status.LISTED
            listing.buyer_booking = None
            listing.updated_at = now
            listing.save(update_fields=["status", "buyer_booking", "updated_at"])
            timeline.resale_released(
                listing.ticket.booking, now=now, listing=listing, buyer_reference=buyer.reference
            )
            released += 1
    return released


def resale_complete(*, seller_booking_id: int, item_id: int, buyer_booking_id: int, now: datetime) -> None:
    """The buyer paid: the listing is sold and the seller's code revoked (payments refunds the seller)."""
    with service_transaction():
        seller = lock_booking(booking_id=seller_booking_id)
        buyer = Booking.objects.get(pk=buyer_booking_id)
        listing = (
            ResaleListing.objects.select_related("ticket")
            .filter(ticket__booking_item_id=item_id, buyer_booking_id=buyer_booking_id)
            .first()
        )
        if listing is not None and listing.status != ResaleListing.Status.SOLD:
            listing.status = ResaleListing.Status.SOLD
            listing.updated_at = now
            listing.save(update_fields=["status", "updated_at"])
            timeline.resale_sold(seller, buyer, now=now, listing=listing)
        _sync_locked(seller, now, f"resold (booking {buyer.reference})")
        if listing is not None:
            email_enqueue(
                booking=seller,
                kind="ticket_resold",
                to=seller.customer.email,
                extra={"ticket_code": listing.ticket.code, "price": str(listing.price)},
                now=now,
                key=f"ticket-resold:{listing.pk}",
            )
