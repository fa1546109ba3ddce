"""One function per ticketing timeline event; each runs inside the service's transaction.

Ticket events are written on the booking's timeline (the subject staff look at), so "what happened
to this booking" includes its tickets, transfers and resale.
"""

from datetime import datetime
from typing import Any

from booking.models import Booking
from core.audit.services import timeline_entries_record_many, timeline_entry_record


def _record(booking: Booking, action: str, now: datetime, actor: str | None = None, **data: Any) -> None:
    timeline_entry_record(subject=booking, action=action, now=now, actor=actor or "system", data=data)


def tickets_issued(booking, *, now, tickets: list, reason: str) -> None:
    _record(
        booking,
        "ticketing.tickets.issued",
        now,
        reason=reason,
        tickets=[{"code": t.code, "holder": t.holder_name, "item": t.booking_item_id} for t in tickets],
    )


def tickets_revoked(booking, *, now, tickets: list, reason: str) -> None:
    _record(
        booking,
        "ticketing.tickets.revoked",
        now,
        reason=reason,
        tickets=[{"code": t.code, "holder": t.holder_name, "item": t.booking_item_id} for t in tickets],
    )


def transfer_requested(booking, *, now, transfer, actor: str) -> None:
    _record(
        booking,
        "ticketing.transfer.requested",
        now,
        actor,
        ticket=transfer.ticket.code,
        to_name=transfer.to_name,
        to_email=transfer.to_email,
        fee=transfer.fee,
    )


def transfer_settled(booking, *, now, transfer, actor: str | None = None) -> None:
    _record(
        booking,
        f"ticketing.transfer.{transfer.status}",
        now,
        actor,
        ticket=transfer.ticket.code,
        new_ticket=transfer.new_ticket.code if transfer.new_ticket else None,
        to_name=transfer.to_name,
    )


def resale_listed(booking, *, now, listing, actor: str = "customer") -> None:
    _record(booking, "ticketing.resale.listed", now, actor, ticket=listing.ticket.code, price=listing.price)


def resale_withdrawn(booking, *, now, listing, reason: str, actor: str = "customer") -> None:
    _record(booking, "ticketing.resale.withdrawn", now, actor, ticket=listing.ticket.code, reason=reason)


def resale_reserved(seller, buyer, *, now, listing) -> None:
    """Both sides: the seller sees who is buying, the buyer sees what they are buying from whom."""
    _record(
        seller,
        "ticketing.resale.reserved",
        now,
        "customer",
        ticket=listing.ticket.code,
        price=listing.price,
        buyer_booking=buyer.reference,
    )
    _record(
        buyer,
        "ticketing.resale.buying",
        now,
        "customer",
        ticket=listing.ticket.code,
        price=listing.price,
        seller_booking=seller.reference,
    )


def resale_released(seller, *, now, listing, buyer_reference: str) -> None:
    _record(
        seller,
        "ticketing.resale.released",
        now,
        ticket=listing.ticket.code,
        buyer_booking=buyer_reference,
        reason="the buyer did not pay in time",
    )


def resale_sold(seller, buyer, *, now, listing) -> None:
    _record(
        seller,
        "ticketing.resale.sold",
        now,
        ticket=listing.ticket.code,
        price=listing.price,
        buyer_booking=buyer.reference,
        refund="the resale price goes back to the seller's card",
    )
    _record(
        buyer, "ticketing.resale.bought", now, ticket=listing.ticket.code, seller_booking=seller.reference
    )


def checked_in(arrivals: list, *, now) -> None:
    """(ticket, admitting scan) pairs: one entry per person let in, on their booking, in one statement."""
    timeline_entries_record_many(
        entries=[
            (
                ticket.booking,
                "ticketing.checked_in",
                scan.door or "door",
                {
                    "code": ticket.code,
                    "holder": ticket.holder_name,
                    "door": scan.door,
                    "at": scan.scanned_at.isoformat(),
                    "offline": scan.offline,
                    "override": scan.override,
                },
            )
            for ticket, scan in arrivals
        ],
        now=now,
    )
