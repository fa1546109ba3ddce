"""Writes of ticketing: tickets follow their booking, transfers and resale, and scans at the door.

Tickets are never edited in place. `tickets_sync` compares what a booking's places are now (who,
which session, which seat) with its valid tickets, revokes every ticket that no longer matches and
issues a new one with a new signed code: confirming, cancelling, moving, renaming, transferring
and reselling all come down to that one idempotent step, run under the booking's lock.

Scans are recorded as the devices report them (each with the id the device made) and judged in the
order they happened, not the order they arrived: an offline door syncing late can turn a scan
another door saw as "valid" into the second entry. Both are kept; the later one is flagged.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection
from django.db.models import Q, prefetch_related_objects

from booking.locks import lock_booking
from booking.models import Booking, BookingCharge, BookingItem, BookingStatus
from booking.services import (
    CustomerDetails,
    booking_attendees_update,
    booking_charge_add,
    booking_charge_settle,
    booking_hold_resale,
)
from core.crypto import decrypt, encrypt
from core.errors import ApplicationError
from core.outbox.services import outbox_enqueue
from core.transactions import service_transaction
from inventory.models import Offering
from ticketing import signing, timeline
from ticketing.locks import lock_listing, lock_tickets
from ticketing.models import (
    CheckInList,
    CheckInState,
    DoorDevice,
    ResaleListing,
    Scan,
    SigningKey,
    Ticket,
    TicketPolicy,
    TicketTransfer,
)
from ticketing.selectors import (
    checkin_list_public_key,
    checkin_list_scope,
    door_device_by_token_hash,
    policy_for,
    public_key_of_session,
    ticket_face_value,
    unpaid_of,
)

TICKETED_KINDS = (Offering.Kind.CLASS, Offering.Kind.EVENT)


class TicketingError(ApplicationError):
    """A ticket request that cannot be done as asked; the message says why."""


class NotAllowed(TicketingError):
    default_code = "not_allowed"


class InvalidRequest(TicketingError):
    default_code = "invalid"


# --- tickets follow their booking ----------------------------------------------------------------


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


def _sync_locked(booking: Booking, now: datetime, reason: str, *, email: bool = True) -> TicketChanges:
    """Make the booking's valid tickets match its places (the booking row is locked).

    Old codes are revoked before new ones are issued: a place never has two valid tickets, not even
    inside this transaction (a unique index says so).
    """
    changes = TicketChanges()
    if booking.offering.kind not in TICKETED_KINDS or not booking.session_id:
        return changes
    wanted = booking.status == BookingStatus.CONFIRMED
    current = {
        t.booking_item_id: t for t in Ticket.objects.filter(booking=booking, status=Ticket.Status.VALID)
    }
    items = list(booking.items.all()) if wanted or current else []
    to_issue: list[tuple[BookingItem, Ticket | None]] = []
    why: dict[int, str] = {}
    for item in items:
        ticket = current.get(item.pk)
        keep = wanted and not item.resold
        if ticket is not None and keep and _matches(ticket, item, booking):
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
        if email:
            replaced = any(old is not None for _, old in to_issue)
            _email_tickets(booking, changes.issued, booking.customer.email, now, replaced=replaced)
            booker = booking.customer.email.lower()
            holders: dict[str, list[Ticket]] = {}
            for ticket in changes.issued:
                if ticket.holder_email and ticket.holder_email.lower() != booker:
                    holders.setdefault(ticket.holder_email, []).append(ticket)
            for to, theirs in holders.items():
                _email_tickets(
                    booking, theirs, to, now, replaced=replaced, transferred_from=booking.customer.name
                )
    return changes


def _email_tickets(booking: Booking, tickets: list[Ticket], to: str, now: datetime, **extra) -> None:
    outbox_enqueue(
        topic="email.send",
        payload={
            "booking_id": booking.pk,
            "kind": "tickets",
            "to": to,
            "extra": {"ticket_ids": [t.pk for t in tickets], **extra},
            "sequence": booking.sequence,
        },
        now=now,
    )


def tickets_sync(*, booking_id: int, now: datetime, reason: str) -> TicketChanges:
    """Issue, revoke or re-issue a booking's tickets so they match it now. Idempotent.

    Confirmed → one valid ticket per place; cancelled, refunded or expired → none; moved to another
    session, re-seated or renamed → the old code is revoked and a new one issued (and emailed).
    """
    with service_transaction():
        booking = lock_booking(booking_id=booking_id)
        return _sync_locked(booking, now, reason)


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


# --- transfers -------------------------------------------------------------------------------------


def _transfer_rules(ticket: Ticket, policy: TicketPolicy, now: datetime) -> None:
    booking = ticket.booking
    if ticket.status != Ticket.Status.VALID or booking.status != BookingStatus.CONFIRMED:
        raise NotAllowed("This ticket is no longer valid, so it cannot be transferred.")
    if not policy.transfers_allowed:
        raise NotAllowed("The organiser does not allow tickets for this event to be transferred.")
    if now >= booking.starts_at - policy.transfer_until:
        raise NotAllowed(
            f"Transfers closed {_duration_text(policy.transfer_until)} before the start. Please contact us."
        )


def _duration_text(delta) -> str:
    hours = int(delta.total_seconds() // 3600)
    if hours and hours % 24 == 0:
        days = hours // 24
        return f"{days} day{'s' if days != 1 else ''}"
    if hours:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} minutes"


def ticket_transfer(*, ticket: Ticket, to_name: str, to_email: str, now: datetime) -> TicketTransfer:
    """Hand a ticket to someone else (or correct its name) under the organiser's rules.

    Free transfers happen at once: the old code is revoked and the new holder gets a new ticket by
    email. With a fee, the transfer waits for the fee to be paid (a charge on the booking, paid on
    the usual checkout page); cancelling the booking or the transfer drops the fee.

    :raises InvalidRequest: no name or no valid email.
    :raises NotAllowed: the organiser's rules forbid it (or it is too late).
    """
    to_name, to_email = to_name.strip()[:150], to_email.strip()
    if not to_name:
        raise InvalidRequest("Please give the name of the person the ticket is for.")
    try:
        validate_email(to_email)
    except ValidationError:
        raise InvalidRequest(f"{to_email or 'That'} does not look like an email address.") from None
    policy = policy_for(offering=ticket.booking.offering)
    _transfer_rules(ticket, policy, now)
    if to_name != ticket.holder_name and not policy.name_change_allowed:
        raise NotAllowed("Tickets for this event are personal: the name on them cannot change.")
    if to_name == ticket.holder_name and to_email.lower() == ticket.holder_email.lower():
        raise InvalidRequest("This ticket is already in that name and email.")
    with service_transaction():
        booking = lock_booking(booking_id=ticket.booking_id)
        ticket = Ticket.objects.select_related("booking").get(pk=ticket.pk)
        ticket.booking = booking
        _transfer_rules(ticket, policy, now)
        if ticket.listings.filter(status__in=["listed", "reserved"]).exists():
            raise NotAllowed("This ticket is offered for resale; withdraw it from sale first.")
        pending = ticket.transfers.filter(status=TicketTransfer.Status.AWAITING_FEE).first()
        if pending is not None:
            if pending.to_email.lower() == to_email.lower() and pending.to_name == to_name:
                return pending
            raise NotAllowed("A transfer of this ticket is waiting for its fee; cancel it first.")
        transfer = TicketTransfer.objects.create(
            ticket=ticket,
            to_name=to_name,
            to_email=to_email,
            fee=policy.transfer_fee,
            status=TicketTransfer.Status.AWAITING_FEE,
            created_at=now,
        )
        timeline.transfer_requested(booking, now=now, transfer=transfer, actor="customer")
        if policy.transfer_fee > 0:
            transfer.charge_reference = f"ticket-transfer-{transfer.pk}"
            transfer.save(update_fields=["charge_reference"])
            booking_charge_add(
                booking=booking,
                amount=policy.transfer_fee,
                description=f"Transfer of ticket {ticket.code} to {to_name}",
                reference=transfer.charge_reference,
                now=now,
            )
        else:
            _transfer_complete_locked(booking, transfer, now)
    return transfer


def _transfer_complete_locked(booking: Booking, transfer: TicketTransfer, now: datetime) -> None:
    ticket = transfer.ticket
    if ticket.status != Ticket.Status.VALID:
        _transfer_cancel_locked(transfer, now, actor="system")
        return
    booking_attendees_update(
        booking=booking,
        names={ticket.booking_item_id: transfer.to_name},
        emails={ticket.booking_item_id: transfer.to_email},
        now=now,
        by_customer=False,
        actor="customer",
    )
    booking.refresh_from_db()
    changes = _sync_locked(booking, now, f"transferred to {transfer.to_name}", email=False)
    new = next(t for t in changes.issued if t.booking_item_id == ticket.booking_item_id)
    transfer.status = TicketTransfer.Status.DONE
    transfer.new_ticket = new
    transfer.completed_at = now
    transfer.save(update_fields=["status", "new_ticket", "completed_at"])
    timeline.transfer_settled(booking, now=now, transfer=transfer, actor="customer")
    _email_tickets(booking, [new], transfer.to_email, now, transferred_from=ticket.holder_name)


def _transfer_cancel_locked(transfer: TicketTransfer, now: datetime, actor: str) -> None:
    transfer.status = TicketTransfer.Status.CANCELLED
    transfer.completed_at = now
    transfer.save(update_fields=["status", "completed_at"])
    charge = BookingCharge.objects.filter(reference=transfer.charge_reference).first()
    if charge is not None:
        booking_charge_settle(charge=charge, paid=False, now=now, actor=actor)
    timeline.transfer_settled(transfer.ticket.booking, now=now, transfer=transfer, actor=actor)


def transfer_fee_settled(*, charge_reference: str, paid: bool, now: datetime) -> TicketTransfer | None:
    """The fee of a waiting transfer was paid (the transfer happens) or cancelled (it does not)."""
    transfer = (
        TicketTransfer.objects.filter(charge_reference=charge_reference).select_related("ticket").first()
    )
    if transfer is None:
        return None
    with service_transaction():
        booking = lock_booking(booking_id=transfer.ticket.booking_id)
        transfer = TicketTransfer.objects.select_related("ticket").get(pk=transfer.pk)
        if transfer.status != TicketTransfer.Status.AWAITING_FEE:
            return transfer
        if paid:
            _transfer_complete_locked(booking, transfer, now)
        else:
            _transfer_cancel_locked(transfer, now, actor="customer")
    return transfer


def ticket_transfer_cancel(*, transfer: TicketTransfer, now: datetime) -> TicketTransfer:
    """The customer changed their mind before paying the fee."""
    with service_transaction():
        lock_booking(booking_id=transfer.ticket.booking_id)
        transfer = TicketTransfer.objects.select_related("ticket__booking").get(pk=transfer.pk)
        if transfer.status == TicketTransfer.Status.AWAITING_FEE:
            _transfer_cancel_locked(transfer, now, actor="customer")
    return transfer


# --- resale ----------------------------------------------------------------------------------------


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
            outbox_enqueue(
                topic="email.send",
                payload={
                    "booking_id": seller.pk,
                    "kind": "ticket_resold",
                    "to": seller.customer.email,
                    "extra": {"ticket_code": listing.ticket.code, "price": str(listing.price)},
                },
                now=now,
                key=f"ticket-resold:{listing.pk}",
            )


# --- door devices ----------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def door_device_register(*, user, name: str, now: datetime) -> tuple[DoorDevice, str]:
    """A phone signs in at a door; the token (shown once) lets it sync even after the session ends.

    :raises NotAllowed: the user may not check tickets in.
    """
    if not user.has_perm("ticketing.scan_tickets"):
        raise NotAllowed("Your account cannot check tickets in. Ask a manager for door access.")
    name = name.strip()[:80] or "Door"
    token = secrets.token_urlsafe(32)
    with service_transaction():
        device = DoorDevice.objects.create(
            name=name, user=user, token_hash=_token_hash(token), created_at=now
        )
    return device, token


def door_device_authenticate(*, token: str, now: datetime) -> DoorDevice | None:
    """The device with this token, if it is still allowed in (not revoked, user still on the door team)."""
    device = door_device_by_token_hash(token_hash=_token_hash(token))
    if device is None or not device.user_can_scan:
        return None
    if device.last_seen_at is None or (now - device.last_seen_at).total_seconds() > 60:
        DoorDevice.objects.filter(pk=device.pk).update(last_seen_at=now)
    return device


def door_device_revoke(*, device: DoorDevice, now: datetime) -> None:
    DoorDevice.objects.filter(pk=device.pk, revoked_at__isnull=True).update(revoked_at=now)


# --- scans -----------------------------------------------------------------------------------------

GATE_RESULTS = {Scan.Result.VALID, Scan.Result.EXITED, Scan.Result.ALREADY_IN, Scan.Result.NOT_INSIDE}
ADMITTED = {Scan.Result.VALID}


@dataclass(frozen=True)
class ScanReport:
    """One scan as a device reports it."""

    id: uuid.UUID
    raw: str
    scanned_at: datetime
    direction: str = Scan.Direction.ENTRY
    door: str = ""
    shown_result: str = ""
    offline: bool = False
    override: bool = False


def _normalise_code(raw: str) -> str:
    return "".join(ch for ch in raw.upper() if ch.isalnum())


def _find_tickets(
    reports: list[ScanReport], clist: CheckInList, keys: dict[int, bytes]
) -> dict[uuid.UUID, Ticket | None]:
    """The ticket each scan names: a signed QR payload (checked against its event's key) or a typed code.

    Read with their booking (is it paid?) and what the door shows (type, zone, seat), in one query.
    """
    claimed: dict[uuid.UUID, int | str] = {}
    for report in reports:
        raw = report.raw.strip()
        if raw.startswith(f"{signing.PREFIX}."):
            try:
                ticket_id, session_id, _, _ = signing.read(raw)
                public = keys.get(session_id) or public_key_of_session(session_id=session_id)
                if public is None:
                    continue
                keys[session_id] = public
                signing.verify(payload=raw, public_key=public)
            except signing.BadPayload:
                continue
            claimed[report.id] = ticket_id
        elif 6 <= len(code := _normalise_code(raw)) <= 16:
            claimed[report.id] = code
    ids = [v for v in claimed.values() if isinstance(v, int)]
    codes = [v for v in claimed.values() if isinstance(v, str)]
    found = (
        Ticket.objects.select_related("booking", "ticket_type", "zone", "seat")
        .filter(Q(pk__in=ids) | Q(code__in=codes))
        .order_by()
        if claimed
        else []
    )
    by_id: dict[int, Ticket] = {}
    for ticket in found:
        if ticket.session_id == clist.session_id:
            ticket.session = clist.session  # loaded with the list already
        by_id[ticket.pk] = ticket
    # Another night's ticket: the door names that night (rare, so not joined into every scan).
    prefetch_related_objects(
        [t for t in by_id.values() if t.session_id != clist.session_id], "session__offering"
    )
    by_code = {t.code: t for t in by_id.values()}
    out: dict[uuid.UUID, Ticket | None] = {}
    for report in reports:
        claim = claimed.get(report.id)
        ticket = by_id.get(claim) if isinstance(claim, int) else by_code.get(claim) if claim else None
        if ticket is not None and isinstance(claim, int) and ticket.payload != report.raw.strip():
            ticket = None  # a genuine signature over another ticket's id: cannot happen unless the key leaked
        out[report.id] = ticket
    return out


def _fixed_result(
    report: ScanReport,
    ticket: Ticket | None,
    clist: CheckInList,
    unpaid: set[int],
    scope: tuple[frozenset[int], frozenset[int]],
) -> str:
    """The verdicts that do not depend on other scans; "" when it is down to the order of entries."""
    if ticket is None:
        return Scan.Result.INVALID
    if ticket.session_id != clist.session_id:
        return Scan.Result.WRONG_SESSION
    if ticket.status == Ticket.Status.REVOKED and ticket.revoked_at <= report.scanned_at:
        return Scan.Result.REVOKED
    types, zones = scope
    if (types and ticket.ticket_type_id not in types) or (zones and ticket.zone_id not in zones):
        return Scan.Result.NOT_ON_LIST
    if report.direction == Scan.Direction.ENTRY:
        if report.scanned_at < clist.session.starts_at - clist.opens_before:
            return Scan.Result.NOT_YET_VALID
        if ticket.booking_id in unpaid and not report.override:
            return Scan.Result.UNPAID
    return ""


def _judge(clist: CheckInList, scans: list[Scan]) -> tuple[list[Scan], CheckInState | dict]:
    """Replay one ticket's gate scans in time order: the first entry wins, later ones are flagged."""
    inside, first, last_entry, changed = False, None, None, []
    for scan in scans:
        if scan.direction == Scan.Direction.ENTRY:
            allowed = first is None or (clist.allow_reentry and (not clist.count_exits or not inside))
            result = Scan.Result.VALID if allowed else Scan.Result.ALREADY_IN
        else:
            result = Scan.Result.EXITED if inside else Scan.Result.NOT_INSIDE
        conflict_with = None
        if result == Scan.Result.ALREADY_IN:
            conflict_with = last_entry
        conflict = result == Scan.Result.ALREADY_IN and scan.shown_result == Scan.Result.VALID
        if result == Scan.Result.VALID:
            inside, last_entry = True, scan
            first = first or scan
        elif result == Scan.Result.EXITED:
            inside = False
        if (scan.result, scan.conflict, scan.conflict_with_id) != (
            result,
            conflict,
            conflict_with.pk if conflict_with else None,
        ):
            scan.result, scan.conflict, scan.conflict_with = result, conflict, conflict_with
            changed.append(scan)
    state = {
        "inside": inside,
        "admitted_scan": first,
        "last_entry_at": last_entry.scanned_at if last_entry else None,
        "last_entry_door": last_entry.door if last_entry else "",
    }
    return changed, state


@dataclass
class ScanOutcome:
    scan: Scan
    ticket: Ticket | None
    first_entry: Scan | None = None


def scans_record(
    *, checkin_list: CheckInList, reports: list[ScanReport], device: DoorDevice | None, now: datetime
) -> list[ScanOutcome]:
    """Record scans from one device (one online scan, or a batch synced after being offline). Idempotent.

    A scan id already recorded is not recorded again; its outcome is returned as it stands now.
    Scans naming the same ticket are replayed in time order under the ticket's lock, so two doors
    cannot both be first; someone let in by an offline door after an earlier entry is flagged.

    The list may come from `checkin_lists_for_scans` (its scope and key loaded with it) or be any
    CheckInList (they are read here).
    """
    clist = checkin_list
    scope = checkin_list_scope(checkin_list=clist)
    key = checkin_list_public_key(checkin_list=clist)
    tickets = _find_tickets(reports, clist, {clist.session_id: key} if key is not None else {})
    unpaid = unpaid_of(bookings=[t.booking for t in tickets.values() if t is not None])
    ticket_ids = sorted(
        {t.pk for t in tickets.values() if t is not None and t.session_id == clist.session_id}
    )
    with service_transaction():
        lock_tickets(ticket_ids=ticket_ids)
        fixed: dict[uuid.UUID, str] = {}
        for report in reports:  # a scan id sent twice in one batch counts once, as first sent
            if report.id not in fixed:
                fixed[report.id] = _fixed_result(report, tickets[report.id], clist, unpaid, scope)
        # One read, under the lock, for both: which scan ids are recorded already (a phone retrying),
        # and the recorded gate scans of every ticket that may be judged now.
        stored = _stored_scans(clist, reports, {tickets[r].pk for r, verdict in fixed.items() if not verdict})
        fresh: list[Scan] = []
        known = set(stored)
        for report in reports:
            if report.id in known:
                continue
            known.add(report.id)
            ticket = tickets[report.id]
            fresh.append(
                Scan(
                    id=report.id,
                    checkin_list=clist,
                    ticket=ticket,
                    raw=report.raw.strip()[:300],
                    direction=report.direction,
                    result=fixed[report.id] or Scan.Result.VALID,
                    shown_result=report.shown_result,
                    offline=report.offline,
                    override=report.override,
                    scanned_at=report.scanned_at,
                    received_at=now,
                    device=device,
                    door=(report.door or (device.name if device else ""))[:80],
                    staff_id=device.user_id if device else None,
                )
            )
        # Judged before they are written, so each is written once, with its verdict.
        gate = [s for s in fresh if s.ticket_id and not fixed[s.id]]
        changed, states, newly_admitted = _rejudge(clist, stored, gate)
        Scan.objects.bulk_create(fresh, ignore_conflicts=True)
        if changed:
            Scan.objects.bulk_update(changed, ["result", "conflict", "conflict_with"])
        if states:
            CheckInState.objects.bulk_create(
                [
                    CheckInState(checkin_list=clist, ticket_id=ticket_id, updated_at=now, **state)
                    for ticket_id, state in states.items()
                ],
                update_conflicts=True,
                unique_fields=["checkin_list", "ticket"],
                update_fields=["inside", "admitted_scan", "last_entry_at", "last_entry_door", "updated_at"],
            )
        _announce_arrivals(newly_admitted, tickets, states, now)
    return _outcomes(clist, reports, tickets, {**stored, **{s.id: s for s in fresh}}, states)


def _stored_scans(
    clist: CheckInList, reports: list[ScanReport], ticket_ids: set[int]
) -> dict[uuid.UUID, Scan]:
    """The scans among *reports* recorded already, and the recorded gate scans of these tickets."""
    found = {
        s.pk: s
        for s in Scan.objects.filter(
            Q(pk__in=[r.id for r in reports])
            | Q(checkin_list=clist, ticket_id__in=ticket_ids, result__in=GATE_RESULTS)
        ).order_by()
    }
    for scan in found.values():  # the first entry a flagged scan points at is (nearly always) here too
        if scan.conflict_with_id in found:
            scan.conflict_with = found[scan.conflict_with_id]
    return found


def _rejudge(
    clist: CheckInList, stored: dict[uuid.UUID, Scan], fresh: list[Scan]
) -> tuple[list[Scan], dict[int, dict], list[int]]:
    """Replay the gate scans of each ticket a fresh scan names, recorded ones with the fresh ones.

    Returns the recorded scans whose verdict changed (a late upload of an earlier entry), each
    ticket's state, and the tickets let in for the first time. A fresh online scan is nearly always
    the latest of its ticket, so only its own verdict is new; the replay costs no query either way.
    """
    by_ticket: dict[int, list[Scan]] = {}
    for scan in fresh:
        by_ticket.setdefault(scan.ticket_id, [])
    admitted_before = set()
    for scan in stored.values():
        if scan.checkin_list_id == clist.pk and scan.ticket_id in by_ticket and scan.result in GATE_RESULTS:
            by_ticket[scan.ticket_id].append(scan)
            # The state written with these scans names its first entry, which is always "valid".
            if scan.result == Scan.Result.VALID:
                admitted_before.add(scan.ticket_id)
    for scan in fresh:
        if not scan.offline and by_ticket[scan.ticket_id]:
            # An online scan is answered now, under the ticket's lock: it comes after every scan
            # already recorded, whatever its request's clock said, and keeps that place in any later
            # replay (an offline upload), so an answer shown at a door is never changed afterwards.
            latest = max(s.scanned_at for s in by_ticket[scan.ticket_id])
            if scan.scanned_at <= latest:
                scan.scanned_at = latest + timedelta(microseconds=1)
        by_ticket[scan.ticket_id].append(scan)
    fresh_ids = {s.id for s in fresh}
    # Two scans made at the same instant go in the order the server heard them: one recorded earlier
    # (its answer already shown at its door) stays first, whatever the ids say.
    changed: list[Scan] = []
    states: dict[int, dict] = {}
    for ticket_id, scans in by_ticket.items():
        scans.sort(key=lambda s: (s.scanned_at, s.received_at, s.id in fresh_ids, str(s.id)))
        judged, states[ticket_id] = _judge(clist, scans)
        changed += [s for s in judged if s.id not in fresh_ids]
    newly_admitted = [
        tid for tid, state in states.items() if state["admitted_scan"] and tid not in admitted_before
    ]
    return changed, states, newly_admitted


def _announce_arrivals(ticket_ids: list[int], tickets: dict, states: dict[int, dict], now: datetime) -> None:
    """Put each arrival on its booking's timeline, and tell others someone arrived (payments takes a
    pay-on-arrival card), once per booking."""
    by_id = {t.pk: t for t in tickets.values() if t is not None}
    timeline.checked_in(
        [(by_id[tid], states[tid]["admitted_scan"]) for tid in ticket_ids if tid in by_id], now=now
    )
    for booking_id in sorted({by_id[tid].booking_id for tid in ticket_ids if tid in by_id}):
        outbox_enqueue(
            topic="ticketing.checked_in",
            payload={"booking_id": booking_id},
            now=now,
            key=f"checked-in:{booking_id}",
        )


def _outcomes(
    clist: CheckInList,
    reports: list[ScanReport],
    tickets: dict,
    scans: dict[uuid.UUID, Scan],
    states: dict[int, dict],
) -> list[ScanOutcome]:
    """Each report's scan as it stands now, with the first entry of its ticket.

    Scans judged just now answer from memory; a scan recorded before and not judged again (a phone
    retrying) is looked up.
    """
    mine = [scans[r.id] for r in reports]
    others = [s for s in mine if s.checkin_list_id != clist.pk or s.ticket_id not in states]
    first_entries = {ticket_id: state["admitted_scan"] for ticket_id, state in states.items()}
    if others:
        prefetch_related_objects([s for s in others if s.conflict_with_id], "conflict_with")
        for state in CheckInState.objects.filter(
            checkin_list_id__in={s.checkin_list_id for s in others},
            ticket_id__in={s.ticket_id for s in others if s.ticket_id},
        ).select_related("admitted_scan"):
            first_entries.setdefault(state.ticket_id, state.admitted_scan)
    return [
        ScanOutcome(
            scan=scan,
            ticket=tickets.get(report.id) or scan.ticket,
            first_entry=scan.conflict_with or first_entries.get(scan.ticket_id),
        )
        for report, scan in zip(reports, mine, strict=True)
    ]
