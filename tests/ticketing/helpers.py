"""Helpers for ticketing tests: confirmed, paid bookings with their tickets, and scans."""

import uuid
from datetime import timedelta

from booking.services import TicketRequest, booking_confirm, booking_money_update
from tests.booking.helpers import NOW, hold_places
from ticketing.models import CheckInList, Ticket
from ticketing.services import ScanReport, scans_record, tickets_sync


def paid_tickets(offering, session, n=1, *, now=NOW, paid=True, tickets=None, who=None):
    """A confirmed booking of *n* places (paid in full unless told otherwise) and its tickets."""
    booking = hold_places(offering, session, n, now=now, tickets=tickets, who=who)
    booking_confirm(booking=booking, now=now)
    if paid and booking.total_amount:
        booking = booking_money_update(booking=booking, paid=booking.total_amount, refunded=0, now=now)
    tickets_sync(booking_id=booking.pk, now=now, reason="confirmed")
    booking.refresh_from_db()
    return booking, list(Ticket.objects.filter(booking=booking, status=Ticket.Status.VALID).order_by("id"))


def adults(concert, n):
    return [TicketRequest(ticket_type_id=concert["adult"].pk, zone_id=concert["stalls"].pk)] * n


def standing(concert, n):
    return [TicketRequest(ticket_type_id=concert["stand"].pk, zone_id=concert["standing"].pk)] * n


def door_list(session) -> CheckInList:
    return CheckInList.objects.get_or_create(session=session, defaults={"name": "All tickets"})[0]


def scan(
    clist, raw, *, at=None, device=None, direction="entry", offline=False, shown="", override=False, id=None
):
    """Record one scan as a door device would, and return its outcome."""
    at = at or clist.session.starts_at - timedelta(minutes=30)
    report = ScanReport(
        id=id or uuid.uuid4(),
        raw=raw,
        scanned_at=at,
        direction=direction,
        offline=offline,
        shown_result=shown,
        override=override,
    )
    return scans_record(checkin_list=clist, reports=[report], device=device, now=at)[0]
