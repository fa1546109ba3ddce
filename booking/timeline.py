"""One function per booking timeline event; each runs inside the service's transaction."""

from datetime import datetime
from typing import Any

from booking.models import Booking
from core.audit.services import timeline_entries_record, timeline_entry_record


def _record(booking: Booking, action: str, now: datetime, acting_user=None, actor=None, **data: Any) -> None:
    timeline_entry_record(
        subject=booking,
        action=action,
        now=now,
        acting_user=acting_user,
        actor=actor,
        data={"status": booking.status, **data},
    )


def hold_created(booking, *, now, acting_user=None, actor=None, **data) -> None:
    _record(
        booking,
        "booking.hold.created",
        now,
        acting_user,
        actor,
        hold_expires_at=booking.hold_expires_at,
        total=booking.total_amount,
        **data,
    )


def confirmed(booking, *, now, acting_user=None, actor=None, **data) -> None:
    _record(booking, "booking.confirmed", now, acting_user, actor, **data)


def hold_expired(booking, *, now, lazily: bool) -> None:
    _record(
        booking,
        "booking.hold.expired",
        now,
        actor="system",
        released_by="a later booking" if lazily else "expiry",
    )


def cancelled(booking, *, now, acting_user=None, actor=None, **data) -> None:
    _record(booking, "booking.cancelled", now, acting_user, actor, **data)


def rescheduled(booking, *, now, acting_user=None, actor=None, **data) -> None:
    _record(booking, "booking.rescheduled", now, acting_user, actor, sequence=booking.sequence, **data)


def status_changed(booking, *, now, acting_user=None, actor=None, **data) -> None:
    _record(booking, f"booking.{booking.status}", now, acting_user, actor, **data)


def attention_flagged(booking, *, now, actor=None, reason: str, **data) -> None:
    _record(booking, "booking.attention.flagged", now, actor=actor, reason=reason, **data)


def email_sent(booking, *, now, kind: str, to: str, **data) -> None:
    _record(booking, "booking.email.sent", now, actor="system", kind=kind, to=to, **data)


def email_skipped(booking, *, now, kind: str, to: str) -> None:
    _record(
        booking, "booking.email.skipped", now, actor="system", kind=kind, to=to, reason="no longer applies"
    )


def attendees_changed(booking, *, now, acting_user=None, actor=None, changes: list) -> None:
    _record(booking, "booking.attendees.changed", now, acting_user, actor, changes=changes)


def resold(booking, *, now, **data) -> None:
    _record(booking, "booking.place.resold", now, actor="system", **data)


def charge_added(booking, *, now, charge, acting_user=None, actor=None) -> None:
    _record(
        booking,
        "booking.charge.added",
        now,
        acting_user,
        actor,
        charge_id=charge.pk,
        description=charge.description,
        amount=charge.amount,
    )


def charge_settled(booking, *, now, charge, actor=None, **data) -> None:
    _record(
        booking,
        f"booking.charge.{charge.status}",
        now,
        actor=actor,
        charge_id=charge.pk,
        description=charge.description,
        amount=charge.amount,
        total=booking.total_amount,
        **data,
    )


def waitlist_offered(booking, *, now, entry_id: int) -> None:
    _record(
        booking,
        "booking.waitlist.offered",
        now,
        actor="system",
        waitlist_entry=entry_id,
        hold_expires_at=booking.hold_expires_at,
    )


def created_and_confirmed(booking, *, now, acting_user=None, actor=None, **data) -> None:
    """A free booking: held and confirmed in the same instant, two entries in one write."""
    timeline_entries_record(
        subject=booking,
        now=now,
        acting_user=acting_user,
        actor=actor,
        entries=[
            ("booking.hold.created", {"status": "held", **data}),
            ("booking.confirmed", {"status": booking.status, "reason": "free"}),
        ],
    )


def attention_resolved(booking, *, now, acting_user=None, reason: str, note: str) -> None:
    _record(booking, "booking.attention.resolved", now, acting_user=acting_user, reason=reason, note=note)


def confirmation_resent(booking, *, now, acting_user=None, to: str) -> None:
    _record(booking, "booking.confirmation.resent", now, acting_user=acting_user, to=to)


def customer_corrected(booking, *, now, acting_user=None, changes: dict) -> None:
    _record(booking, "booking.customer.corrected", now, acting_user=acting_user, changes=changes)
