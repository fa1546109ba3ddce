"""Cancelling, and the refund amount: `cancellation_quote` decides how much comes back under the
offering's cancellation policy, `booking_cancel` cancels and releases the places. Locks the booking,
then the capacity it releases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from booking import timeline
from booking.locks import lock_booking
from booking.models import (
    HOLDING_STATUSES,
    SOLD_STATUSES,
    Booking,
    BookingStatus,
)
from booking.selectors import (
    booking_customer_cancel_refusal,
    notice_text,
)
from booking.services._shared import _announce, _invite_changed, _places_of
from booking.services.errors import NotAllowed
from booking.states import check_transition
from core.outbox.services import outbox_enqueue
from core.transactions import service_transaction
from inventory.capacity import (
    appointment_time_release,
    session_places_release,
)
from inventory.locks import lock_session_counters

# --- cancellation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundQuote:
    percent: int
    amount: Decimal
    explanation: str


def cancellation_quote(*, booking: Booking, now: datetime, paid: Decimal | None = None) -> RefundQuote:
    """What a customer gets back if they cancel now, under the offering's policy, of what they paid."""
    paid = booking.amount_paid - booking.amount_refunded if paid is None else paid
    if booking.status in HOLDING_STATUSES or paid == 0:
        return RefundQuote(0, Decimal("0.00"), "Nothing has been paid, so nothing is refunded.")
    policy = booking.offering.cancellation_policy
    if policy is None:
        return RefundQuote(0, Decimal("0.00"), "This booking is not refundable online.")
    notice = booking.starts_at - now
    for tier in policy.tiers.order_by("-min_notice"):
        if notice >= tier.min_notice:
            amount = (paid * tier.refund_percent / 100).quantize(Decimal("0.01"))
            return RefundQuote(
                tier.refund_percent,
                amount,
                f"{tier.refund_percent}% back when cancelling at least "
                f"{notice_text(tier.min_notice)} before.",
            )
    return RefundQuote(0, Decimal("0.00"), "It is too close to the start for a refund.")


def booking_cancel(
    *,
    booking: Booking,
    now: datetime,
    by_customer: bool,
    acting_user=None,
    actor: str | None = None,
    reason: str = "",
    refund: bool = True,
) -> tuple[Booking, RefundQuote]:
    """Cancel a booking, free its places, and say how much is to be refunded (payments moves the money).

    :raises NotAllowed: the policy does not let the customer cancel this online (staff may).
    :raises IllegalTransition: it is not in a state that can be cancelled.
    """
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        check_transition(booking.status, BookingStatus.CANCELLED)
        if by_customer and (refusal := booking_customer_cancel_refusal(booking=booking, now=now)):
            raise NotAllowed(refusal)
        quote = (
            cancellation_quote(booking=booking, now=now)
            if refund
            else RefundQuote(0, Decimal("0.00"), "No refund.")
        )
        was_sold = booking.status in SOLD_STATUSES
        places, holders = _places_of(booking)
        if booking.session_id:
            counters = lock_session_counters(session_ids=[booking.session_id])[booking.session_id]
            session_places_release(counters=counters, places=places, holders=holders, was_sold=was_sold)
        else:
            appointment_time_release(holders=holders)
        booking.status = BookingStatus.CANCELLED
        booking.cancelled_at = now
        booking.hold_expires_at = None
        _invite_changed(booking, now, "status", "cancelled_at", "hold_expires_at")
        actor = actor or ("customer" if by_customer else None)
        timeline.cancelled(
            booking,
            now=now,
            acting_user=acting_user,
            actor=actor,
            reason=reason,
            refund_percent=quote.percent,
            refund_amount=quote.amount,
            was_paid=was_sold,
        )
        _announce(
            "booking.cancelled",
            booking,
            now,
            refund_amount=str(quote.amount),
            refund_percent=quote.percent,
            by_customer=by_customer,
        )
        if booking.session_id:
            outbox_enqueue(topic="session.places_freed", payload={"session_id": booking.session_id}, now=now)
    return booking, quote
