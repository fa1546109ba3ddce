"""Helpers for booking tests: customers, idempotency keys, holding places and slots, local times."""

import itertools
import uuid
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from booking.services import CustomerDetails, TicketRequest, booking_hold_appointment, booking_hold_session

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)  # Monday 08:00 in London
TUESDAY = date(2026, 6, 2)
_people = itertools.count(1)


def at(hour, minute=0, day=TUESDAY):
    return datetime.combine(day, time(hour, minute)).replace(tzinfo=LONDON)


def someone(name: str | None = None) -> CustomerDetails:
    n = next(_people)
    return CustomerDetails(
        name=name or f"Customer {n}", email=f"customer{n}-{uuid.uuid4().hex[:6]}@example.com"
    )


def key() -> str:
    return uuid.uuid4().hex


def hold_places(offering, session, n=1, *, who=None, now=NOW, tickets=None, **kwargs):
    return booking_hold_session(
        offering=offering,
        session=session,
        tickets=tickets or [TicketRequest()] * n,
        customer=who or someone(),
        idempotency_key=kwargs.pop("idempotency_key", key()),
        now=now,
        **kwargs,
    )


def hold_slot(offering, starts_at, *, who=None, now=NOW, **kwargs):
    return booking_hold_appointment(
        offering=offering,
        starts_at=starts_at,
        customer=who or someone(),
        idempotency_key=kwargs.pop("idempotency_key", key()),
        now=now,
        **kwargs,
    )


def total_counter(session):
    from inventory.models import CapacityCounter

    return CapacityCounter.objects.get(session=session, zone=None, ticket_type=None)
