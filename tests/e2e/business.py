"""The business the browser tests book with: a salon, two yoga classes and a seated concert.

It resembles the demo (`seed_demo`) but is built here, dated from the real clock and open every day,
so what a test finds does not depend on the weekday, the hour, or changes to the demo.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from inventory.models import (
    CancellationPolicy,
    Category,
    Location,
    Offering,
    RefundTier,
    ResourceRequirement,
    TicketType,
    Zone,
)
from inventory.services import zone_seat_map_generate
from tests.inventory import factories as make

LONDON = ZoneInfo("Europe/London")
EVERY_DAY = {d: [(time(9), time(18))] for d in range(7)}


@dataclass(frozen=True)
class Business:
    flexible: CancellationPolicy
    haircut: Offering  # 45 minutes with Ana or Ben, 48.00 GBP, every quarter hour 09:00–18:00
    vinyasa: Offering  # 12.00 GBP a place, every evening at 18:30 from tomorrow, 16 places
    gentle: Offering  # 12.00 GBP a place, every morning at 09:30 from tomorrow, 16 places
    concert: Offering  # three weeks ahead: Stalls (10 rows × 16 seats) at 38.00, Standing at 22.00


def business_build(*, now: datetime) -> Business:
    flexible = CancellationPolicy.objects.create(
        name="Flexible", description="Full refund up to 24 hours before; 50% up to 2 hours before."
    )
    RefundTier.objects.create(policy=flexible, min_notice=timedelta(hours=24), refund_percent=100)
    RefundTier.objects.create(policy=flexible, min_notice=timedelta(hours=2), refund_percent=50)
    tomorrow = now.astimezone(LONDON).date() + timedelta(days=1)
    return Business(
        flexible=flexible,
        haircut=_salon(flexible, now),
        vinyasa=_class("vinyasa-flow", "Vinyasa Flow", time(18, 30), tomorrow, flexible, now),
        gentle=_class("gentle-yoga", "Gentle Yoga", time(9, 30), tomorrow, flexible, now),
        concert=_concert(flexible, tomorrow + timedelta(days=20), now),
    )


def _location(slug: str, name: str) -> Location:
    return Location.objects.create(
        slug=slug,
        name=name,
        address_line1="12 Harbour Street",
        postcode="BS1 4RN",
        city="Bristol",
        country="GB",
        time_zone="Europe/London",
    )


def _category(slug: str, name: str) -> Category:
    return Category.objects.get_or_create(slug=slug, defaults={"name": name})[0]


def _salon(policy: CancellationPolicy, now: datetime) -> Offering:
    salon = _location("lumen-salon", "Lumen Salon")
    stylists = [make.resource(at=salon, name=name, hours=EVERY_DAY, now=now) for name in ("Ana", "Ben")]
    haircut = Offering.objects.create(
        kind=Offering.Kind.APPOINTMENT,
        slug="haircut",
        name="Haircut & finish",
        description="Consultation, wash, cut and blow-dry finish with the stylist of your choice.",
        category=_category("hair", "Hair"),
        location=salon,
        price=Decimal("48.00"),
        currency="GBP",
        duration=timedelta(minutes=45),
        slot_interval=timedelta(minutes=15),
        buffer_after=timedelta(minutes=10),
        min_notice=timedelta(hours=2),
        cancellation_policy=policy,
    )
    requirement = ResourceRequirement.objects.create(offering=haircut, label="Stylist")
    requirement.candidates.set(stylists)
    return haircut


def _class(
    slug: str, name: str, at: time, first_day: date, policy: CancellationPolicy, now: datetime
) -> Offering:
    offering = Offering.objects.create(
        kind=Offering.Kind.CLASS,
        slug=slug,
        name=name,
        description=f"{name}: sixty minutes for all levels.",
        restrictions="Please arrive 10 minutes early.",
        category=_category("yoga", "Yoga"),
        location=Location.objects.filter(slug="lumen-yoga-loft").first()
        or _location("lumen-yoga-loft", "Lumen Yoga Loft"),
        price=Decimal("12.00"),
        currency="GBP",
        min_notice=timedelta(minutes=30),
        waitlist_enabled=True,
        max_places_per_booking=4,
        cancellation_policy=policy,
    )
    for n in range(14):
        starts_at = datetime.combine(first_day + timedelta(days=n), at).replace(tzinfo=LONDON)
        make.session(offering=offering, starts_at=starts_at, capacity=16, now=now)
    return offering


def _concert(policy: CancellationPolicy, day: date, now: datetime) -> Offering:
    concert = Offering.objects.create(
        kind=Offering.Kind.EVENT,
        slug="midwinter-strings",
        name="Midwinter Strings",
        description="The Avon Quartet plays Haydn, Britten and Dvořák by candlelight.",
        restrictions="Under-16s must be accompanied by an adult.",
        category=_category("music", "Live music"),
        location=_location("corn-exchange", "The Corn Exchange"),
        currency="GBP",
        horizon=timedelta(days=365),
        max_places_per_booking=8,
        cancellation_policy=policy,
    )
    stalls = Zone.objects.create(offering=concert, name="Stalls", capacity=0, sort_order=1)
    zone_seat_map_generate(zone=stalls, rows=10, seats_per_row=16, now=now)
    standing = Zone.objects.create(offering=concert, name="Standing", capacity=200, sort_order=2)
    adult = TicketType.objects.create(offering=concert, name="Stalls – Adult", price=Decimal("38.00"))
    adult.zones.set([stalls])
    standing_ticket = TicketType.objects.create(offering=concert, name="Standing", price=Decimal("22.00"))
    standing_ticket.zones.set([standing])
    starts_at = datetime.combine(day, time(19, 30)).replace(tzinfo=LONDON)
    make.session(offering=concert, starts_at=starts_at, minutes=120, now=now)
    return concert
