"""Tickets follow their booking: `tickets_sync` revokes every ticket that no longer matches the
booking's places and issues new signed codes, idempotently; staff can revoke a code. Locks the
booking (`booking.locks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection

from booking.locks import lock_booking
from booking.models import Booking, BookingCharge, BookingItem, BookingStatus
from booking.services import booking_charge_settle
from booking.services.emails import email_enqueue
from core.crypto import decrypt, encrypt
from core.transactions import service_transaction
from inventory.models import Offering
from ticketing import signing, timeline
from ticketing.models import (
    CheckInList,
    ResaleListing,
    SigningKey,
    Ticket,
    TicketTransfer,
)

TICKETED_KINDS = (Offering.Kind.CLASS, Offering.Kind.EVENT)


def booking_is_ticketed(booking: Booking) -> bool:
    """Places in a class or event session get tickets; appointments do not."""
    return booking.offering.kind in TICKETED_KINDS and booking.session_id is not None


def _signing_key(offering: Offering, now: datetime) -> SigningKey:
    """The offering's key pair, made the first time it issues a ticket."""
    existing = SigningKey.objects.filter(offering=offering).first()
    if existing is not None:
        return existing
    private, public = signing.new_key_pair()
    key, _ = SigningKey.objects.get_or_create(
        offering=offering,
        defaults={"private_key": encrypt(private), "public_key": public, "created_at": now},
    )
    return key


def _holder(item: BookingItem, booking: Booking) -> tuple[str, str]:
    return item.attendee_name or booking.customer.name, item.attendee_email or booking.customer.email


def _matches(ticket: Ticket, item: BookingItem, booking: Booking) -> bool:
    name, email = _holder(item, booking)
    return (
        ticket.session_id == booking.session_id
        and ticket.seat_id == item.seat_id
        and ticket.zone_id == item.zone_id
        and ticket.ticket_type_id == item.ticket_type_id
        and ticket.holder_name == name
        and ticket.holder_email == email
    )


def _next_ticket_id() -> int:
    # The signed payload carries the ticket's id, so the id is taken before the row is written.
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('ticketing_ticket', 'id'))")
        return cursor.fetchone()[0]


def _issue(booking: Booking, item: BookingItem, key: SigningKey, now: datetime) -> Ticket:
    ticket_id = _next_ticket_id()
    name, email = _holder(item, booking)
    return Ticket.objects.create(
        id=ticket_id,
        booking_item=item,
        booking=booking,
        session_id=booking.session_id,
        payload=signing.sign(
            private_key=decrypt(key.private_key), ticket_id=ticket_id, session_id=booking.session_id
        ),
        holder_name=name,
        holder_email=email,
        ticket_type_id=item.ticket_type_id,
        zone_id=item.zone_id,
        seat_id=item.seat_id,
        issued_at=now,
        updated_at=now,
    )


def _revoke(tickets: list[Ticket], now: datetime, reason: str) -> None:
    """Revoke codes and undo what hung on them: an open resale listing, a transfer waiting for its fee."""
    for ticket in tickets:
        ticket.status = Ticket.Status.REVOKED
        ticket.revoked_at = now
        ticket.revoke_reason = reason[:200]
        ticket.updated_at = now
    Ticket.objects.bulk_update(tickets, ["status", "revoked_at", "revoke_reason", "updated_at"])
    ids = [t.pk for t in tickets]
    for listing in ResaleListing.objects.filter(ticket_id__in=ids, status__in=["listed", "reserved"]):
        listing.status = ResaleListing.Status.WITHDRAWN
        listing.updated_at = now
        listing.save(update_fields=["status", "updated_at"])
        timeline.resale_withdrawn(
            listing.ticket.booking, now=now, listing=listing, reason=reason, actor="system"
        )
    for transfer in TicketTransfer.objects.filter(
        ticket_id__in=ids, status=TicketTransfer.Status.AWAITING_FEE
    ):
        _transfer_cancel_locked(transfer, now, actor="system")


@dataclass
class TicketChanges:
    issued: list[Ticket] = field(default_factory=list)
    revoked: list[Ticket] = field(default_factory=list)


REASONS = {
    "rescheduled": "moved to another date",
    "attendees_changed": "the name on it changed",
    "confirmed": "re-issued",
}


def _sync_locked(
    booking: Booking, now: datetime, reason: str, *, email: bool = True, sequence: int | None = None
) -> TicketChanges:
    """Make the booking's valid tickets match its places (the booking row is locked).

    Old codes are revoked before new ones are issued: a place never has two valid tickets, not even
    inside this transaction (a unique index says so).
    """
    changes = TicketChanges()
    if not booking_is_ticketed(booking):
        return changes
    wanted = booking.status == BookingStatus.CONFIRMED
    current = {
        t.booking_item_id: t for t in Ticket.objects.filter(booking=booking, status=Ticket.Status.VALID)
    }
    items = list(booking.items.all()) if wanted or current else []
    to_issue: list[tuple[BookingItem, Ticket | None]] = []
    kept: list[Ticket] = []
    why: dict[int, str] = {}
    for item in items:
        ticket = current.get(item.pk)
        keep = wanted and not item.resold
        if ticket is not None and keep and _matches(ticket, item, booking):
            kept.append(ticket)
            continue
        if ticket is not None:
            changes.revoked.append(ticket)
            why[ticket.pk] = (
                f"the booking was {booking.get_status_display().lower()}"
                if not wanted
                else "resold"
                if item.resold
                else REASONS.get(reason, reason)
            )
        if keep:
            to_issue.append((item, ticket))
    if changes.revoked:
        for text in sorted(set(why.values())):
            revoked = [t for t in changes.revoked if why[t.pk] == text]
            _revoke(revoked, now, text)
            timeline.tickets_revoked(booking, now=now, tickets=revoked, reason=text)
    if to_issue:
        key = _signing_key(booking.offering, now)
        for item, old in to_issue:
            new = _issue(booking, item, key, now)
            changes.issued.append(new)
            if old is not None:
                Ticket.objects.filter(pk=old.pk).update(replaced_by=new)
        CheckInList.objects.get_or_create(session_id=booking.session_id, defaults={"name": "All tickets"})
        timeline.tickets_issued(booking, now=now, tickets=changes.issued, reason=reason)
    if not email:
        return changes
    replaced = any(old is not None for _, old in to_issue)
    confirmation_queued = False
    overtaken = sequence is not None and sequence < booking.sequence  # moved or cancelled since
    if reason == "confirmed" and wanted and not overtaken:
        # booking's notifications leave the customer's confirmation to us (`confirmation_carried`):
        # it carries every ticket, so the booker gets one email, not a confirmation and then tickets;
        # once per booking, however often its tickets are synced. Overtaken, the later change's own
        # email tells the booking as it is now, and the tickets go alone.
        tickets = sorted(kept + changes.issued, key=lambda t: t.pk)
        once = f"confirmed:{booking.pk}"
        confirmation_queued = _email_tickets(booking, tickets, booking.customer.email, now, "confirmed", once)
    if changes.issued and not confirmation_queued:
        _email_tickets(booking, changes.issued, booking.customer.email, now, replaced=replaced)
    booker = booking.customer.email.lower()
    holders: dict[str, list[Ticket]] = {}
    for ticket in changes.issued:
        if ticket.holder_email and ticket.holder_email.lower() != booker:
            holders.setdefault(ticket.holder_email, []).append(ticket)
    for to, theirs in holders.items():
        _email_tickets(booking, theirs, to, now, replaced=replaced, transferred_from=booking.customer.name)
    return changes


def _email_tickets(
    booking: Booking,
    tickets: list[Ticket],
    to: str,
    now: datetime,
    kind: str = "tickets",
    key: str | None = None,
    **extra,
) -> bool:
    return email_enqueue(
        booking=booking,
        kind=kind,
        to=to,
        extra={"ticket_ids": [t.pk for t in tickets], **extra},
        now=now,
        sequence=booking.sequence,
        key=key,
    )


def tickets_sync(
    *, booking_id: int, now: datetime, reason: str, sequence: int | None = None
) -> TicketChanges:
    """Issue, revoke or re-issue a booking's tickets so they match it now. Idempotent.

    Confirmed → one valid ticket per place; cancelled, refunded or expired → none; moved to another
    session, re-seated or renamed → the old code is revoked and a new one issued (and emailed).
    `sequence` is the booking's as of the event being followed.
    """
    with service_transaction():
        booking = lock_booking(booking_id=booking_id)
        return _sync_locked(booking, now, reason, sequence=sequence)


def ticket_revoke(*, ticket: Ticket, now: datetime, reason: str, acting_user) -> Ticket:
    """Staff stop a code (a screenshot shared online): the place gets a fresh code, emailed to the holder."""
    with service_transaction():
        booking = lock_booking(booking_id=ticket.booking_id)
        ticket = Ticket.objects.select_related("booking_item").get(pk=ticket.pk)
        if ticket.status != Ticket.Status.VALID:
            return ticket
        full_reason = f"{reason} (by {acting_user.get_username()})"
        _revoke([ticket], now, full_reason)
        timeline.tickets_revoked(booking, now=now, tickets=[ticket], reason=full_reason)
        if booking.status == BookingStatus.CONFIRMED:
            fresh = _issue(booking, ticket.booking_item, _signing_key(booking.offering, now), now)
            ticket.replaced_by = fresh
            ticket.save(update_fields=["replaced_by"])
            timeline.tickets_issued(booking, now=now, tickets=[fresh], reason="replaces a revoked code")
            _email_tickets(booking, [fresh], fresh.holder_email or booking.customer.email, now, replaced=True)
    return ticket


# A pending transfer of a revoked ticket is cancelled with it; the transfers module uses it too.
def _transfer_cancel_locked(transfer: TicketTransfer, now: datetime, actor: str) -> None:
    transfer.status = TicketTransfer.Status.CANCELLED
    transfer.completed_at = now
    transfer.save(update_fields=["status", "completed_at"])
    charge = BookingCharge.objects.filter(reference=transfer.charge_reference).first()
    if charge is not None:
        booking_charge_settle(charge=charge, paid=False, now=now, actor=actor)
    timeline.transfer_settled(transfer.ticket.booking, now=now, transfer=transfer, actor=actor)
