"""Ticketing in the demo: the concert's transfer and resale rules, a door-staff login, and an event
starting within the hour with guests already booked, so /door/ has tickets to scan right away.

Idempotent: the rules and login are created once; the "Open rehearsal" gets a new session (and its
guests) only when it has none still to come.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from booking.services import CustomerDetails, TicketRequest, booking_hold_session
from inventory.models import Category, Location, Offering, TicketType, Zone
from inventory.services import session_create
from ticketing.models import TicketPolicy
from ticketing.services import tickets_sync

GUESTS = [
    "Amara Okafor",
    "Ben Carter",
    "Chloe Dubois",
    "Dev Patel",
    "Elena Rossi",
    "Finn Murphy",
    "Grace Liu",
]


def seed(*, now: datetime, log) -> None:
    concert = Offering.objects.filter(slug="midwinter-strings").first()
    if concert is not None:
        TicketPolicy.objects.get_or_create(
            offering=concert,
            defaults={
                "transfers_allowed": True,
                "transfer_until": timedelta(hours=48),
                "name_change_allowed": True,
                "transfer_fee": Decimal("2.50"),
                "resale_allowed": True,
                "resale_cap_percent": 100,
            },
        )
    _door_login()
    _rehearsal(now)
    log("login: door / door (door staff: checks tickets in at /door/, nothing else)")


def _door_login() -> None:
    user, created = get_user_model().objects.get_or_create(username="door", defaults={"is_staff": False})
    if created:
        user.set_password("door")
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name="Door staff"))


def _rehearsal(now: datetime) -> None:
    hall = Location.objects.filter(name__icontains="hall").first() or Location.objects.first()
    if hall is None:
        return
    offering, created = Offering.objects.get_or_create(
        slug="open-rehearsal",
        defaults={
            "kind": Offering.Kind.EVENT,
            "name": "Open rehearsal",
            "location": hall,
            "category": Category.objects.filter(slug="music").first(),
            "currency": "GBP",
            "max_places_per_booking": 4,
            "description": "Sit in while the Avon Quartet rehearses. Free, but you need a ticket.",
        },
    )
    if created:
        standing = Zone.objects.create(offering=offering, name="Standing", capacity=60)
        free = TicketType.objects.create(offering=offering, name="Free entry", price=Decimal("0.00"))
        free.zones.set([standing])
    if offering.sessions.filter(starts_at__gt=now).exists():
        return
    # Within the hour, so the door's check-in window (two hours before the start) is already open.
    starts_at = (now + timedelta(minutes=90)).replace(minute=0, second=0, microsecond=0)
    session = session_create(
        offering=offering, starts_at=starts_at, ends_at=starts_at + timedelta(hours=2), now=now
    )
    ticket_type = offering.ticket_types.get()
    zone = offering.zones.get()
    for n, name in enumerate(GUESTS, start=1):
        booking = booking_hold_session(
            offering=offering,
            session=session,
            tickets=[
                TicketRequest(ticket_type_id=ticket_type.pk, zone_id=zone.pk, attendee_name=attendee)
                for attendee in [name, f"Guest of {name.split()[0]}"][: 1 + n % 2]
            ],
            customer=CustomerDetails(name=name, email=f"guest{n}@example.com"),
            idempotency_key=f"demo-rehearsal-{session.pk}-{n}",
            now=now,
        )
        tickets_sync(booking_id=booking.pk, now=now, reason="confirmed")
