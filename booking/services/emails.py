"""Which emails a booking change sends, sending one (once per outbox message), and queuing the
reminders due. Locks nothing; the outbox makes each email go once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from booking import timeline
from booking.models import (
    Booking,
    BookingStatus,
    WaitlistEntry,
)
from core.mail import mail_send
from core.outbox.services import outbox_enqueue
from core.transactions import service_transaction
from inventory.models import Offering

# --- notifications --------------------------------------------------------------------------------


def _emails_for(topic: str, booking: Booking, payload: dict) -> list[tuple[str, str, dict]]:
    """Which emails (kind, recipient, extra context) an event of *topic* sends."""
    from booking.notifications import confirmation_carried, staff_on

    customer = booking.customer.email
    is_appointment = booking.offering.kind == Offering.Kind.APPOINTMENT
    staff = [r.email for r in staff_on(booking) if r.email] if is_appointment else []
    if topic == "booking.confirmed":
        confirmation = [] if confirmation_carried(booking) else [("confirmed", customer, {})]
        return confirmation + [("staff_new", to, {}) for to in staff]
    if topic == "booking.held":
        is_offer = WaitlistEntry.objects.filter(offer=booking).exists()
        return [] if is_offer or booking.total_amount == 0 else [("awaiting_payment", customer, {})]
    if topic == "booking.payment_failed":
        return [("payment_failed", customer, {"reason": payload.get("reason", "")})]
    if topic == "booking.rescheduled":
        return [("rescheduled", customer, {})] + [("staff_changed", to, {}) for to in staff]
    if topic == "booking.cancelled":
        extra = {
            "refund_amount": payload.get("refund_amount", "0"),
            "by_customer": payload.get("by_customer"),
        }
        staff_cancelled = [("staff_cancelled", to, {}) for to in staff]
        return [("cancelled", customer, extra), *staff_cancelled]
    if topic == "waitlist.offered":
        return [("waitlist_offer", customer, {})]
    if topic == "payments.balance_due":
        return [("balance_due", customer, {"amount": payload.get("amount"), "due_at": payload.get("due_at")})]
    if topic == "payments.money_returned":
        return [("money_returned", customer, {})]
    return []


def email_enqueue(
    *,
    booking: Booking,
    kind: str,
    to: str,
    extra: dict,
    now: datetime,
    sequence: int | None = None,
    key: str | None = None,
) -> bool:
    """Queue one email about *booking* in the outbox; it leaves once the caller's transaction commits.

    `sequence` is the booking's as of the change being told: an email older than a later change is
    dropped at send time (the customer would otherwise get a stale invite). `key` makes the email
    one-off (a reminder is queued once however often the sweep runs). False if the key was taken.
    """
    payload = {"booking_id": booking.pk, "kind": kind, "to": to, "extra": extra}
    if sequence is not None:
        payload["sequence"] = sequence
    return bool(outbox_enqueue(topic="email.send", payload=payload, now=now, key=key))


def notifications_dispatch(*, topic: str, payload: dict, now: datetime) -> int:
    """Turn a booking event into one outbox message per email to send (each sent and retried alone)."""
    booking = Booking.objects.select_related("customer", "offering__location").get(pk=payload["booking_id"])
    emails = _emails_for(topic, booking, payload)
    with service_transaction():
        for kind, to, extra in emails:
            email_enqueue(
                booking=booking,
                kind=kind,
                to=to,
                extra=extra,
                now=now,
                sequence=payload.get("sequence", booking.sequence),  # as of the event
            )
    return len(emails)


def email_send(
    *, booking_id: int, kind: str, to: str, extra: dict, now: datetime, sequence: int | None = None
) -> bool:
    """Send one email about a booking, unless it no longer applies; the timeline records it.

    A reminder for a booking that was cancelled or moved, or a "pay now" for one that is already
    paid, is not sent: the booking as it is now decides.
    """
    from booking.notifications import CONFIRMED_ONLY_KINDS, email_build

    booking = Booking.objects.select_related(
        "customer", "offering__location", "offering__cancellation_policy", "session"
    ).get(pk=booking_id)
    superseded = kind in ("confirmed", "rescheduled", "staff_new", "staff_changed") and (
        sequence is not None and sequence < booking.sequence
    )  # a later change sent its own, newer email: this one would show a state that is gone
    stale = superseded or (
        (
            kind == "reminder"
            and (
                booking.status != BookingStatus.CONFIRMED
                or extra.get("starts_at") != booking.starts_at.isoformat()
            )
        )
        or (kind in ("awaiting_payment", "payment_failed", "waitlist_offer") and not booking.is_holding)
        or (kind == "balance_due" and booking.amount_due <= 0)
        or (kind in CONFIRMED_ONLY_KINDS and booking.status != BookingStatus.CONFIRMED)
    )
    with service_transaction():
        if stale:
            timeline.email_skipped(booking, now=now, kind=kind, to=to)
            return False
        email = email_build(booking=booking, kind=kind, to=to, now=now, extra=extra)
        mail_send(email.message)
        timeline.email_sent(
            booking, now=now, kind=kind, to=to, subject=email.message.subject, sequence=booking.sequence
        )
    return True


def reminders_enqueue_due(*, now: datetime, window: timedelta = timedelta(minutes=30)) -> int:
    """Queue the reminders whose moment has come (each once per start time, so a move re-arms them).

    Run by beat every few minutes. A reminder whose moment passed before the booking was confirmed
    (booked for tomorrow morning at 10 pm) is not sent late.
    """
    queued = 0
    horizon = now + timedelta(hours=max(_all_reminder_offsets(), default=0))
    candidates = Booking.objects.filter(
        status=BookingStatus.CONFIRMED, starts_at__gt=now, starts_at__lte=horizon
    )
    for booking in candidates.select_related("offering", "customer"):
        for hours in booking.offering.reminder_offsets:
            moment = booking.starts_at - timedelta(hours=hours)
            if not (moment <= now < moment + window) or (
                booking.confirmed_at and booking.confirmed_at > moment
            ):
                continue
            with service_transaction():
                queued += email_enqueue(
                    booking=booking,
                    kind="reminder",
                    to=booking.customer.email,
                    extra={"starts_at": booking.starts_at.isoformat(), "hours": hours},
                    now=now,
                    key=f"reminder:{booking.pk}:{booking.starts_at.isoformat()}:{hours}h",
                )
    return queued


def _all_reminder_offsets() -> list[int]:
    hours = set()
    for value in (
        Offering.objects.exclude(reminder_hours="").values_list("reminder_hours", flat=True).distinct()
    ):
        hours.update(int(h) for h in value.split(",") if h.strip())
    return sorted(hours)
