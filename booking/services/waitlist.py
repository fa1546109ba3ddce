"""The waitlist of a sold-out session: joining, leaving, and offering freed places in turn. Locks the
session's capacity rows while it offers places.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction

from booking import timeline
from booking.models import (
    WaitlistEntry,
)
from booking.services._shared import _announce, _customer_for
from booking.services.errors import InvalidBooking
from booking.services.expiry import _release_expired_on_session
from booking.services.holds import _hold_session_in_transaction, _session_lines
from booking.services.requests import CustomerDetails, TicketRequest
from core.outbox.services import outbox_enqueue
from core.transactions import service_transaction
from inventory.capacity import (
    session_places_check,
)
from inventory.errors import SoldOut
from inventory.locks import lock_session_counters
from inventory.models import CapacityCounter, Offering, Session, TicketType

# --- waitlist -----------------------------------------------------------------------------------


def waitlist_join(
    *,
    offering: Offering,
    session: Session,
    customer: CustomerDetails,
    quantity: int,
    now: datetime,
    ticket_type: TicketType | None = None,
) -> WaitlistEntry:
    """Put a customer on the waitlist of a session that has fewer places left than they want.

    :raises InvalidBooking: the session has places, has no waitlist, or the request is wrong.
    """
    customer = customer.validated()
    if not offering.waitlist_enabled:
        raise InvalidBooking(f"{offering.name} has no waitlist.")
    if session.offering_id != offering.pk:
        raise InvalidBooking(f"That session is not a session of {offering.name}.")
    if session.starts_at <= now or session.status != Session.Status.SCHEDULED:
        raise InvalidBooking("This session can no longer be joined.")
    if not 1 <= quantity <= offering.max_places_per_booking:
        raise InvalidBooking(f"Ask for between 1 and {offering.max_places_per_booking} places.")
    total = CapacityCounter.objects.get(session=session, zone=None, ticket_type=None)
    if total.capacity - total.held - total.sold >= quantity:
        raise InvalidBooking("There are places left: you can book them now.")
    with service_transaction():
        person = _customer_for(customer, now)
        try:
            with transaction.atomic():
                entry = WaitlistEntry.objects.create(
                    session=session,
                    customer=person,
                    quantity=quantity,
                    ticket_type=ticket_type,
                    created_at=now,
                    updated_at=now,
                )
        except IntegrityError:
            raise InvalidBooking("You are already on the waitlist for this session.") from None
        outbox_enqueue(topic="waitlist.joined", payload={"entry_id": entry.pk}, now=now)
    return entry


def waitlist_offer_next(*, session_id: int, now: datetime) -> list[WaitlistEntry]:
    """Offer freed places to the waitlist in order: each next entry gets a hold and an offer that expires.

    Strictly first come, first served: an entry that needs more places than are free waits at the
    head of the queue rather than being overtaken.
    """
    offered = []
    with service_transaction():
        session = Session.objects.select_related("offering", "offering__location").get(pk=session_id)
        if session.status != Session.Status.SCHEDULED or session.starts_at <= now:
            return []
        waiting = list(
            WaitlistEntry.objects.filter(session=session, status=WaitlistEntry.Status.WAITING)
            .select_related("customer")
            .order_by("created_at", "id")
        )
        if not waiting:
            return []
        counters = lock_session_counters(session_ids=[session.pk]).get(session.pk, [])
        counters = _release_expired_on_session(session, counters, now)
        offering = session.offering
        deadline = min(
            now + timedelta(minutes=offering.waitlist_offer_minutes), session.starts_at - offering.min_notice
        )
        for entry in waiting:
            tickets = [
                TicketRequest(ticket_type_id=entry.ticket_type_id, attendee_name=entry.customer.name)
            ] * entry.quantity
            details = CustomerDetails(entry.customer.name, entry.customer.email)
            try:
                lines = _session_lines(
                    offering=offering, session=session, tickets=tickets, customer=details, now=now
                )
                session_places_check(counters=counters, places=[line.place for line in lines])
            except (SoldOut, InvalidBooking):
                break
            with transaction.atomic():
                booking = _hold_session_in_transaction(
                    offering=offering,
                    session=session,
                    lines=lines,
                    customer=entry.customer,
                    idempotency_key=f"waitlist:{entry.pk}",
                    now=now,
                    actor="system",
                    hold_until=deadline,
                    counters=counters,
                )
            counters = list(CapacityCounter.objects.filter(pk__in=[c.pk for c in counters]).order_by("pk"))
            entry.status = WaitlistEntry.Status.OFFERED
            entry.offer = booking
            entry.updated_at = now
            entry.save(update_fields=["status", "offer", "updated_at"])
            timeline.waitlist_offered(booking, now=now, entry_id=entry.pk)
            _announce("waitlist.offered", booking, now, entry_id=entry.pk)
            offered.append(entry)
    return offered


def waitlist_leave(*, entry: WaitlistEntry, now: datetime) -> WaitlistEntry:
    with service_transaction():
        updated = WaitlistEntry.objects.filter(pk=entry.pk, status=WaitlistEntry.Status.WAITING).update(
            status=WaitlistEntry.Status.LEFT, updated_at=now
        )
        if not updated:
            raise InvalidBooking("You are no longer waiting for this session.")
    entry.refresh_from_db()
    return entry
