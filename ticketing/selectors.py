"""Reads of ticketing: tickets of a booking, resale offers, and what a door device needs to work alone."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, F, Min, Q
from django.db.models.expressions import RawSQL

from booking.models import Booking, BookingStatus
from core.hooks import hook_results
from core.times import venue_time
from inventory.models import Offering, Session
from ticketing import signing
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

SCAN_PERMISSION = ("ticketing", "scan_tickets")

# Every API call of every door phone starts here, so it is one plain statement: built with the ORM
# (two Exists subqueries) it cost more CPU to compose than the rest of a scan's reads together.
# `user_can_scan` is what `user.has_perm("ticketing.scan_tickets")` answers with ModelBackend, our
# only authentication backend (and the default User model): an active superuser, or an active user
# given the permission directly or through a group. `has_perm` itself would cost two queries more on
# every call, its cache living on a user object that is new on every request.
DOOR_DEVICE_SQL = """
SELECT device.*,
       account.is_active AND (account.is_superuser OR EXISTS (
           SELECT 1
             FROM auth_permission permission
             JOIN django_content_type content_type ON content_type.id = permission.content_type_id
            WHERE content_type.app_label = %(app_label)s AND permission.codename = %(codename)s
              AND (permission.id IN (SELECT permission_id FROM auth_user_user_permissions
                                      WHERE user_id = account.id)
                   OR permission.id IN (SELECT granted.permission_id
                                          FROM auth_group_permissions granted
                                          JOIN auth_user_groups membership USING (group_id)
                                         WHERE membership.user_id = account.id))
       )) AS user_can_scan
  FROM ticketing_doordevice device
  JOIN auth_user account ON account.id = device.user_id
 WHERE device.token_hash = %(token_hash)s AND device.revoked_at IS NULL
"""


def door_device_by_token_hash(*, token_hash: str) -> DoorDevice | None:
    """The live (not revoked) device with this token hash, with `user_can_scan`: one query.

    The user is not loaded with it (most calls need only `user_id`); `device.user` reads it.
    """
    app_label, codename = SCAN_PERMISSION
    params = {"app_label": app_label, "codename": codename, "token_hash": token_hash}
    return next(iter(DoorDevice.objects.raw(DOOR_DEVICE_SQL, params)), None)


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


# Composed as ORM subqueries these cost more CPU than the rest of the list's query; plain SQL costs none.
SCOPE_TYPE_IDS_SQL = (
    "ARRAY(SELECT tickettype_id FROM ticketing_checkinlist_ticket_types"
    " WHERE checkinlist_id = ticketing_checkinlist.id)"
)
SCOPE_ZONE_IDS_SQL = (
    "ARRAY(SELECT zone_id FROM ticketing_checkinlist_zones WHERE checkinlist_id = ticketing_checkinlist.id)"
)
SCOPE_PUBLIC_KEY_SQL = (
    "(SELECT public_key FROM ticketing_signingkey JOIN inventory_session"
    " ON inventory_session.offering_id = ticketing_signingkey.offering_id"
    " WHERE inventory_session.id = ticketing_checkinlist.session_id)"
)


def checkin_lists_for_scans(*, list_ids: list[int]) -> dict[int, CheckInList]:
    """The lists with what judging a scan needs, in one query, read afresh on every request.

    Each list comes with its session, the ticket type and zone ids it admits (`scope_type_ids`,
    `scope_zone_ids`; empty: all) and its event's public key (`scope_public_key`, None before the
    first ticket was issued): a list narrowed in the admin a moment ago applies to the next scan.
    """
    lists = (
        CheckInList.objects.filter(pk__in=list_ids)
        .select_related("session")
        .annotate(
            scope_type_ids=RawSQL(SCOPE_TYPE_IDS_SQL, ()),  # noqa: S611 - a constant
            scope_zone_ids=RawSQL(SCOPE_ZONE_IDS_SQL, ()),  # noqa: S611 - a constant
            scope_public_key=RawSQL(SCOPE_PUBLIC_KEY_SQL, ()),  # noqa: S611 - a constant
        )
        .order_by()
    )
    return {clist.pk: clist for clist in lists}


def checkin_list_scope(*, checkin_list: CheckInList) -> tuple[frozenset[int], frozenset[int]]:
    """The ticket type ids and zone ids the list admits (empty: every type, every zone)."""
    if hasattr(checkin_list, "scope_type_ids"):  # loaded with the list by checkin_lists_for_scans
        return frozenset(checkin_list.scope_type_ids), frozenset(checkin_list.scope_zone_ids)
    types = CheckInList.ticket_types.through.objects.filter(checkinlist_id=checkin_list.pk)
    zones = CheckInList.zones.through.objects.filter(checkinlist_id=checkin_list.pk)
    return (
        frozenset(types.values_list("tickettype_id", flat=True)),
        frozenset(zones.values_list("zone_id", flat=True)),
    )


def checkin_list_public_key(*, checkin_list: CheckInList) -> bytes | None:
    """The public key of the list's event (None before its first ticket was issued)."""
    if hasattr(checkin_list, "scope_public_key"):  # loaded with the list by checkin_lists_for_scans
        key = checkin_list.scope_public_key
        return bytes(key) if key is not None else None
    return public_key_of_session(session_id=checkin_list.session_id)


def _list_filter(clist: CheckInList) -> Q:
    types, zones = checkin_list_scope(checkin_list=clist)
    condition = Q(session_id=clist.session_id, status=Ticket.Status.VALID)
    if types:
        condition &= Q(ticket_type_id__in=types)
    if zones:
        condition &= Q(zone_id__in=zones)
    return condition


# Every door asks after every scan, so this is one plain statement, one pass over the session's
# tickets: composed with the ORM (a FilteredRelation and four filtered aggregates) it cost the web
# process ten times the CPU that Postgres spends running it. A ticket has at most one state per list,
# so the join repeats no ticket; only tickets of the list's session are ever judged on it (any other
# is "wrong session"), so no state is missed.
CHECKIN_COUNTS_SQL = """
SELECT count(*) FILTER (WHERE ticket.status = %(valid)s
                          AND (%(every_type)s OR ticket.ticket_type_id = ANY(%(type_ids)s::bigint[]))
                          AND (%(every_zone)s OR ticket.zone_id = ANY(%(zone_ids)s::bigint[]))) AS expected,
       count(*) FILTER (WHERE ticket.status = %(valid)s AND state.admitted_scan_id IS NOT NULL) AS admitted,
       count(*) FILTER (WHERE ticket.status = %(valid)s AND state.admitted_scan_id IS NOT NULL
                          AND state.inside) AS inside,
       (SELECT count(*) FROM ticketing_scan WHERE checkin_list_id = %(list_id)s AND conflict) AS conflicts
  FROM ticketing_ticket ticket
  LEFT JOIN ticketing_checkinstate state
         ON state.ticket_id = ticket.id AND state.checkin_list_id = %(list_id)s
 WHERE ticket.session_id = %(session_id)s
"""


def checkin_counts(*, checkin_list: CheckInList) -> dict[str, int]:
    """Admitted (let in at least once), inside, expected (valid tickets this list admits) and conflicts."""
    types, zones = checkin_list_scope(checkin_list=checkin_list)
    with connection.cursor() as cursor:
        cursor.execute(
            CHECKIN_COUNTS_SQL,
            {
                "valid": Ticket.Status.VALID,
                "every_type": not types,
                "type_ids": sorted(types),
                "every_zone": not zones,
                "zone_ids": sorted(zones),
                "list_id": checkin_list.pk,
                "session_id": checkin_list.session_id,
            },
        )
        expected, admitted, inside, conflicts = cursor.fetchone()
    return {
        "admitted": admitted,
        "inside": inside if checkin_list.count_exits else admitted,
        "expected": expected,
        "conflicts": conflicts,
    }


def checkin_conflicts(*, checkin_list: CheckInList, limit: int = 50) -> list[Scan]:
    return list(
        Scan.objects.filter(checkin_list=checkin_list, conflict=True)
        .select_related("ticket", "conflict_with")
        .order_by("-scanned_at")[:limit]
    )


def ticket_door_fields(ticket: Ticket) -> dict[str, Any]:
    """A ticket as the door page shows it, in the manifest and in a scan's answer alike."""
    return {
        "id": ticket.pk,
        "code": ticket.code,
        "name": ticket.holder_name,
        "type": ticket.ticket_type.name if ticket.ticket_type_id else "",
        "zone": ticket.zone.name if ticket.zone_id else "",
        "seat": ticket.seat.label if ticket.seat_id else "",
        "status": ticket.status,
    }


def _ticket_row(ticket: Ticket, on_list: bool, state: CheckInState | None, unpaid: bool) -> dict[str, Any]:
    return {
        **ticket_door_fields(ticket),
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
    return _not_paying_on_arrival(owing)


def unpaid_of(*, bookings: list[Booking]) -> set[int]:
    """`unpaid_bookings` of bookings already read (with the scanned tickets): no query unless one owes."""
    return _not_paying_on_arrival({b.pk for b in bookings if b.total_amount > b.amount_paid})


def _not_paying_on_arrival(owing: set[int]) -> set[int]:
    if not owing:
        return set()
    authorised = set().union(*hook_results("bookings_paying_on_arrival", booking_ids=sorted(owing)))
    return owing - authorised


def checkin_list_summary(*, checkin_list: CheckInList) -> dict[str, Any]:
    session = checkin_list.session
    offering = session.offering
    zone = offering.location.time_zone
    return {
        "id": checkin_list.pk,
        "name": checkin_list.name,
        "session_id": session.pk,
        "offering": offering.name,
        "starts_at": session.starts_at.isoformat(),
        "ends_at": session.ends_at.isoformat(),
        "starts_local": venue_time(session.starts_at, zone, "short"),
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
