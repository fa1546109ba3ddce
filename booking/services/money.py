"""What the payments app reports about money: a failed payment, amounts paid and refunded, extra
charges (balance, fees) and their settlement, and flagging a booking for staff attention. The
payments app moves the money; the booking keeps the story. Locks the booking.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from booking import timeline
from booking.locks import lock_booking
from booking.models import (
    Booking,
    BookingCharge,
    BookingStatus,
)
from booking.services._shared import _announce
from booking.services.errors import InvalidBooking
from booking.states import check_transition
from core.transactions import service_transaction

# --- payments report here (the payments app moves the money; the booking keeps the story) ---------


def booking_payment_failed(*, booking: Booking, now: datetime, reason: str, actor: str = "stripe") -> Booking:
    """A payment attempt failed: the booking shows it, and the hold keeps running for another try."""
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        if booking.status == BookingStatus.PAYMENT_FAILED or not booking.is_holding:
            return booking
        check_transition(booking.status, BookingStatus.PAYMENT_FAILED)
        booking.status = BookingStatus.PAYMENT_FAILED
        booking.updated_at = now
        booking.save(update_fields=["status", "updated_at"])
        timeline.status_changed(booking, now=now, actor=actor, reason=reason)
        _announce("booking.payment_failed", booking, now, reason=reason)
    return booking


def booking_flag_attention(
    *, booking: Booking, now: datetime, reason: str, actor: str = "system", **data
) -> Booking:
    """Ask a person to look at this booking (a late payment, a calendar conflict), saying why."""
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        booking.needs_attention = True
        booking.attention_reason = f"{booking.attention_reason}\n{reason}".strip()
        booking.updated_at = now
        booking.save(update_fields=["needs_attention", "attention_reason", "updated_at"])
        timeline.attention_flagged(booking, now=now, actor=actor, reason=reason, **data)
    return booking


def booking_money_update(*, booking: Booking, paid: Decimal, refunded: Decimal, now: datetime) -> Booking:
    """Record what has been paid and refunded; a cancelled or expired booking fully refunded ends refunded."""
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        booking.amount_paid, booking.amount_refunded = paid, refunded
        booking.updated_at = now
        fields = ["amount_paid", "amount_refunded", "updated_at"]
        fully_refunded = paid > 0 and refunded >= paid
        if fully_refunded and booking.status in (BookingStatus.CANCELLED, BookingStatus.EXPIRED):
            check_transition(booking.status, BookingStatus.REFUNDED)
            booking.status = BookingStatus.REFUNDED
            fields.append("status")
            timeline.status_changed(booking, now=now, actor="stripe", refunded=refunded)
            _announce("booking.refunded", booking, now, refunded=str(refunded))
        booking.save(update_fields=fields)
    return booking


def booking_charge_add(
    *,
    booking: Booking,
    amount: Decimal,
    description: str,
    reference: str,
    now: datetime,
    actor: str = "customer",
) -> BookingCharge:
    """Ask a confirmed booking for more money (a fee), once per *reference*; paid through checkout.

    :raises InvalidBooking: the booking is not confirmed, or the amount is not above zero.
    """
    if amount <= 0:
        raise InvalidBooking("A charge must be above zero.")
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        existing = BookingCharge.objects.filter(reference=reference).first()
        if existing is not None:
            return existing
        if booking.status != BookingStatus.CONFIRMED:
            raise InvalidBooking("Only a confirmed booking can be charged.")
        charge = BookingCharge.objects.create(
            booking=booking, amount=amount, description=description, reference=reference, created_at=now
        )
        timeline.charge_added(booking, now=now, charge=charge, actor=actor)
    return charge


def booking_charge_settle(
    *, charge: BookingCharge, paid: bool, now: datetime, actor: str = "system", **data
) -> BookingCharge:
    """A due charge is paid (it joins the booking's total) or cancelled. Idempotent.

    Announces `booking.charge.paid` / `booking.charge.cancelled` so whoever asked for it can act.
    """
    with service_transaction():
        booking = lock_booking(booking_id=charge.booking_id)
        charge = BookingCharge.objects.get(pk=charge.pk)
        if charge.status != BookingCharge.Status.DUE:
            return charge
        charge.status = BookingCharge.Status.PAID if paid else BookingCharge.Status.CANCELLED
        charge.settled_at = now
        charge.save(update_fields=["status", "settled_at"])
        if paid:
            booking.total_amount += charge.amount
            booking.updated_at = now
            booking.save(update_fields=["total_amount", "updated_at"])
        timeline.charge_settled(booking, now=now, charge=charge, actor=actor, **data)
        _announce(
            f"booking.charge.{charge.status}", booking, now, charge_id=charge.pk, reference=charge.reference
        )
    return charge
