"""A ticket handed to someone else: the policy's rules (deadline, fee), the transfer, its fee settled
or cancelled. Locks the booking, then its tickets.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from booking.locks import lock_booking
from booking.models import Booking, BookingStatus
from booking.services import (
    booking_attendees_update,
    booking_charge_add,
)
from core.transactions import service_transaction
from ticketing import timeline
from ticketing.models import (
    Ticket,
    TicketPolicy,
    TicketTransfer,
)
from ticketing.selectors import (
    policy_for,
)
from ticketing.services.errors import InvalidRequest, NotAllowed
from ticketing.services.tickets import _email_tickets, _sync_locked, _transfer_cancel_locked


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
