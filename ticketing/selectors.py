"""Reads of ticketing: tickets of a booking, resale offers, and what a door device needs to work alone."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Min, Q
from django.utils import timezone

from booking.models import Booking, BookingStatus
from core.hooks import hook_results
from inventory.models import Offering, Session
from ticketing import signing
from ticketing.models import (
    CheckInList,
    CheckInState,
    ResaleListing,
    Scan,
    SigningKey,
    Ticket,
    TicketPolicy,
    TicketTransfer,
)


def policy_for(*, offering: Offering) -> TicketPolicy:
    """The organiser's rules; an event without its own rules gets the defaults (free transfers, no resale)."""
    # Read afresh: a rule changed in the admin a moment ago applies to the very next request.
    return TicketPolicy.objects.filter(offering_id=offering.pk).first() or TicketPolicy(offering=offering)


def public_key_of_session(*, session_id: int) -> bytes | None:
    key = (
        SigningKey.objects.filter(offering__sessions=session_id).values_list("public_key", flat=True).first()
    )
    return bytes(key) if key is not None else None


def session_keys(*, session_ids: list[int]) -> dict[int, bytes]:
    rows = SigningKey.objects.filter(offering__sessions__in=session_ids).values_list(
        "offering__sessions", "public_key"
    )
    return {session_id: bytes(key) for session_id, key in rows}


def ticket_face_value(*, ticket: Ticket) -> Decimal:
    """What the place first sold for (a resold place keeps its original face value)."""
    item = ticket.booking_item
    while item.resale_of_id:
        item = item.resale_of
    return item.price


def tickets_of_booking(*, booking: Booking) -> list[Ticket]:
    return list(
        Ticket.objects.filter(booking=booking, status=Ticket.Status.VALID)
        .select_related("ticket_type", "zone", "seat", "session")
        .order_by("id")
    )


def ticket_by_access_key(*, access_key: str) -> Ticket:
    """:raises Ticket.DoesNotExist:"""
    return Ticket.objects.select_related(
        "booking__offering__location",
        "booking__customer",
        "session",
        "ticket_type",
        "zone",
        "seat",
        "replaced_by",
    ).get(access_key=access_key)


def ticket_actions(*, ticket: Ticket, now: datetime) -> dict[str, Any]:
    """What the booker may do with this ticket now, and why not, for the ticket page."""
    booking = ticket.booking
    policy = policy_for(offering=booking.offering)
    active = ticket.status == Ticket.Status.VALID and booking.status == BookingStatus.CONFIRMED
    transfer_deadline = booking.starts_at - policy.transfer_until
    listing = ticket.listings.filter(status__in=["listed", "reserved"]).first()
    pending = ticket.transfers.filter(status=TicketTransfer.Status.AWAITING_FEE).first()
    face = ticket_face_value(ticket=ticket)
    return {
        "policy": policy,
        "can_transfer": active and policy.transfers_allowed and now < transfer_deadline and not listing,
        "transfer_deadline": transfer_deadline,
        "pending_transfer": pending,
        "listing": listing,
        "can_resell": active
        and policy.resale_allowed
        and booking.starts_at > now
        and not pending
        and face * policy.resale_cap_percent > 0,
        "resale_cap": (face * policy.resale_cap_percent / 100).quantize(Decimal("0.01")),
        "face_value": face,
    }


def resale_offers(*, session: Session) -> list[ResaleListing]:
    return list(
        ResaleListing.objects.filter(session=session, status=ResaleListing.Status.LISTED)
        .select_related("ticket__ticket_type", "ticket__zone", "ticket__seat")
        .order_by("price", "listed_at")
    )


def resold_listings(*, booking: Booking) -> list[ResaleListing]:
    """This booking's tickets that other fans bought on resale."""
    return list(
        ResaleListing.objects.filter(ticket__booking=booking, status=ResaleListing.Status.SOLD)
        .select_related("ticket")
        .order_by("updated_at")
    )


def resale_summary(*, offering: Offering, now: datetime) -> dict[int, dict[str, Any]]:
    """Per upcoming session: how many resale tickets are for sale and from what price."""
    rows = (
        ResaleListing.objects.filter(
            session__offering=offering, status=ResaleListing.Status.LISTED, session__starts_at__gt=now
        )
        .values("session_id")
        .annotate(count=Count("id"), lowest=Min("price"))
    )
    return {row["session_id"]: row for row in rows}


# --- the door ------------------------------------------------------------------------------------


def door_lists(*, now: datetime, days_back: int = 1, days_ahead: int = 14) -> list[CheckInList]:
    """Check-in lists of sessions from yesterday to two weeks ahead, soonest first."""
    return list(
        CheckInList.objects.filter(
            session__ends_at__gte=now - timedelta(days=days_back),
            session__starts_at__lte=now + timedelta(days=days_ahead),
        )
        .select_related("session__offering__location")
        .order_by("session__starts_at", "name")
    )


def _list_filter(clist: CheckInList) -> Q:
    types = list(clist.ticket_types.values_list("pk", flat=True))
    zones = list(clist.zones.values_list("pk", flat=True))
    condition = Q(session_id=clist.session_id, status=Ticket.Status.VALID)
    if types:
        condition &= Q(ticket_type_id__in=types)
    if zones:
        condition &= Q(zone_id__in=zones)
    return condition


def checkin_counts(*, checkin_list: CheckInList) -> dict[str, int]:
    """Admitted (let in at least once) and expected (valid tickets this list admits)."""
    expected = Ticket.objects.filter(_list_filter(checkin_list)).count()
    states = CheckInState.objects.filter(
        checkin_list=checkin_list, admitted_scan__isnull=False, ticket__status=Ticket.Status.VALID
    )
    return {
        "admitted": states.count(),
        "inside": states.filter(inside=True).count() if checkin_list.count_exits else states.count(),
        "expected": expected,
        "conflicts": Scan.objects.filter(checkin_list=checkin_list, conflict=True).count(),
    }


def checkin_conflicts(*, checkin_list: CheckInList, limit: int = 50) -> list[Scan]:
    return list(
        Scan.objects.filter(checkin_list=checkin_list, conflict=True)
        .select_related("ticket", "conflict_with")
        .order_by("-scanned_at")[:limit]
    )


def _ticket_row(ticket: Ticket, on_list: bool, state: CheckInState | None, unpaid: bool) -> dict[str, Any]:
    return {
        "id": ticket.pk,
        "code": ticket.code,
        "name": ticket.holder_name,
        "type": ticket.ticket_type.name if ticket.ticket_type_id else "",
        "zone": ticket.zone.name if ticket.zone_id else "",
        "seat": ticket.seat.label if ticket.seat_id else "",
        "status": ticket.status,
        "revoked_at": ticket.revoked_at.isoformat() if ticket.revoked_at else None,
        "on_list": on_list,
        "unpaid": unpaid,
        "admitted": bool(state and state.admitted_scan_id),
        "inside": bool(state and state.inside),
        "last_entry_at": state.last_entry_at.isoformat() if state and state.last_entry_at else None,
        "last_entry_door": state.last_entry_door if state else "",
    }


def checkin_manifest(
    *, checkin_list: CheckInList, modified_since: datetime | None, now: datetime
) -> dict[str, Any]:
    """What a door device keeps to judge tickets alone: the key, the rules, and every ticket that changed.

    With *modified_since*, only tickets that changed after it (issued, revoked, paid, checked in
    elsewhere) — the device merges them into what it has. `server_time` is the next cursor.
    """
    session = checkin_list.session
    offering = session.offering
    key = SigningKey.objects.filter(offering=offering).values_list("public_key", flat=True).first()
    tickets = Ticket.objects.filter(session=session).select_related("ticket_type", "zone", "seat")
    states = CheckInState.objects.filter(checkin_list=checkin_list)
    if modified_since is not None:
        changed_states = states.filter(updated_at__gt=modified_since).values_list("ticket_id", flat=True)
        tickets = tickets.filter(
            Q(updated_at__gt=modified_since)
            | Q(booking__updated_at__gt=modified_since)
            | Q(pk__in=changed_states)
        )
    tickets = list(tickets)
    state_by_ticket = {s.ticket_id: s for s in states.filter(ticket_id__in=[t.pk for t in tickets])}
    on_list = set(
        Ticket.objects.filter(_list_filter(checkin_list), pk__in=[t.pk for t in tickets]).values_list(
            "pk", flat=True
        )
    )
    unpaid = unpaid_bookings(booking_ids={t.booking_id for t in tickets})
    return {
        "server_time": now.isoformat(),
        "full": modified_since is None,
        "list": checkin_list_summary(checkin_list=checkin_list),
        "public_key": signing.public_key_b64(key) if key is not None else None,
        "tickets": [
            _ticket_row(t, t.pk in on_list, state_by_ticket.get(t.pk), t.booking_id in unpaid)
            for t in tickets
        ],
        "counts": checkin_counts(checkin_list=checkin_list),
    }


def unpaid_bookings(*, booking_ids: set[int]) -> set[int]:
    """Of these bookings, those with money still to pay, except pay-on-arrival ones (taken at the door)."""
    owing = set(
        Booking.objects.filter(pk__in=booking_ids, total_amount__gt=F("amount_paid")).values_list(
            "pk", flat=True
        )
    )
    if not owing:
        return set()
    authorised = set().union(*hook_results("bookings_paying_on_arrival", booking_ids=sorted(owing)))
    return owing - authorised


def checkin_list_summary(*, checkin_list: CheckInList) -> dict[str, Any]:
    session = checkin_list.session
    offering = session.offering
    zone = offering.location.time_zone
    local = timezone.localtime(session.starts_at, timezone=zoneinfo.ZoneInfo(zone))
    return {
        "id": checkin_list.pk,
        "name": checkin_list.name,
        "session_id": session.pk,
        "offering": offering.name,
        "starts_at": session.starts_at.isoformat(),
        "ends_at": session.ends_at.isoformat(),
        "starts_local": local.strftime("%a %d %b, %H:%M ") + local.tzname(),
        "opens_at": (session.starts_at - checkin_list.opens_before).isoformat(),
        "allow_reentry": checkin_list.allow_reentry,
        "count_exits": checkin_list.count_exits,
        "location": offering.location.name,
    }


def booking_ticket_counts(*, booking_ids: list[int]) -> dict[int, int]:
    rows = (
        Ticket.objects.filter(booking_id__in=booking_ids, status=Ticket.Status.VALID)
        .values("booking_id")
        .annotate(n=Count("id"))
    )
    return {r["booking_id"]: r["n"] for r in rows}
