"""The demo business: a salon, a yoga studio and a concert in Bristol.

Idempotent: objects are found by slug/name before they are created, sessions come from series that
skip dates they already have, and the concert gets its two nights only once.
"""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from inventory.models import (
    CancellationPolicy,
    Category,
    Location,
    Offering,
    PriceTier,
    RefundTier,
    Resource,
    ResourceRequirement,
    SessionSeries,
    TicketType,
    Zone,
)
from inventory.services import (
    resource_save,
    series_generate_sessions,
    session_create,
    working_hours_replace,
    zone_seat_map_generate,
)

LONDON = "Europe/London"


def seed(*, now: datetime, log) -> None:
    policies = _policies()
    categories = {
        slug: Category.objects.get_or_create(slug=slug, defaults={"name": name})[0]
        for slug, name in [
            ("hair", "Hair"),
            ("wellbeing", "Wellbeing"),
            ("yoga", "Yoga"),
            ("music", "Live music"),
        ]
    }
    salon, loft, hall = _locations()
    _salon(salon, categories, policies, now)
    _yoga(loft, categories, policies, now)
    _concert(hall, categories, policies, now)
    log(f"demo: {Offering.objects.count()} offerings at {Location.objects.count()} locations")


def _policies() -> dict[str, CancellationPolicy]:
    specs = {
        "Flexible": ("Full refund up to 24 hours before; 50% up to 2 hours before.", [(24, 100), (2, 50)]),
        "Standard": (
            "Full refund up to 7 days before; 50% up to 48 hours before.",
            [(24 * 7, 100), (48, 50)],
        ),
        "Tickets": ("Tickets are refunded in full up to 14 days before the concert.", [(24 * 14, 100)]),
    }
    policies = {}
    for name, (description, tiers) in specs.items():
        policy, created = CancellationPolicy.objects.get_or_create(
            name=name, defaults={"description": description}
        )
        if created:
            RefundTier.objects.bulk_create(
                RefundTier(policy=policy, min_notice=timedelta(hours=h), refund_percent=p) for h, p in tiers
            )
        policies[name] = policy
    return policies


def _locations() -> tuple[Location, Location, Location]:
    common = {"city": "Bristol", "country": "GB", "time_zone": LONDON}
    salon, _ = Location.objects.get_or_create(
        slug="lumen-salon",
        defaults={
            "name": "Lumen Salon",
            "address_line1": "12 Harbour Street",
            "postcode": "BS1 4RN",
            "phone": "+44 117 496 0123",
            "directions": "Ground floor, step-free entrance.",
            **common,
        },
    )
    loft, _ = Location.objects.get_or_create(
        slug="lumen-yoga-loft",
        defaults={
            "name": "Lumen Yoga Loft",
            "address_line1": "12 Harbour Street, top floor",
            "postcode": "BS1 4RN",
            "directions": "Lift to the 3rd floor; mats provided.",
            **common,
        },
    )
    hall, _ = Location.objects.get_or_create(
        slug="corn-exchange",
        defaults={
            "name": "The Corn Exchange",
            "address_line1": "Corn Street",
            "postcode": "BS1 1JQ",
            "directions": "Doors open 45 minutes before the start.",
            **common,
        },
    )
    return salon, loft, hall


def _resource(location, name, kind, *, now, hours, email="") -> Resource:
    resource = Resource.objects.filter(location=location, name=name).first()
    if resource is None:
        resource = resource_save(
            resource=Resource(location=location, name=name, kind=kind, email=email), now=now
        )
        working_hours_replace(resource=resource, periods=hours)
    return resource


def _salon(salon, categories, policies, now) -> None:
    t = time
    tue_sat = [(d, t(9), t(17, 30)) for d in range(1, 6)]
    split = [(d, s, e) for d in range(1, 6) for s, e in [(t(10), t(13)), (t(14), t(19))]]
    stylists = [
        _resource(
            salon, "Ana Okafor", Resource.Kind.STAFF, now=now, hours=tue_sat, email="ana@lumen.example"
        ),
        _resource(salon, "Ben Hartley", Resource.Kind.STAFF, now=now, hours=split, email="ben@lumen.example"),
        _resource(
            salon,
            "Chloe Marsh",
            Resource.Kind.STAFF,
            now=now,
            email="chloe@lumen.example",
            hours=[(d, t(9), t(15)) for d in (0, 2, 4, 5)],
        ),
    ]
    opening = [(d, t(9), t(19)) for d in range(6)]
    colour_room = _resource(salon, "Colour Room", Resource.Kind.ROOM, now=now, hours=opening)
    treatment_room = _resource(salon, "Treatment Room", Resource.Kind.ROOM, now=now, hours=opening)

    def appointment(slug, name, *, minutes, price, rooms, category, description, restrictions="", **extra):
        offering, created = Offering.objects.get_or_create(
            slug=slug,
            defaults={
                "kind": Offering.Kind.APPOINTMENT,
                "name": name,
                "location": salon,
                "category": category,
                "description": description,
                "restrictions": restrictions,
                "price": Decimal(price),
                "currency": "GBP",
                "duration": timedelta(minutes=minutes),
                "slot_interval": timedelta(minutes=15),
                "min_notice": timedelta(hours=2),
                "horizon": timedelta(days=60),
                "cancellation_policy": policies["Flexible"],
                **extra,
            },
        )
        if created:
            stylist = ResourceRequirement.objects.create(offering=offering, label="Stylist")
            stylist.candidates.set(stylists)
            if rooms:
                room = ResourceRequirement.objects.create(
                    offering=offering, label="Room", customer_chooses=False
                )
                room.candidates.set(rooms)

    appointment(
        "haircut",
        "Haircut & finish",
        minutes=45,
        price="48.00",
        rooms=None,
        category=categories["hair"],
        buffer_after=timedelta(minutes=10),
        description="Consultation, wash, cut and blow-dry finish with the stylist of your choice.",
    )
    appointment(
        "colour-and-cut",
        "Colour & cut",
        minutes=120,
        price="135.00",
        rooms=[colour_room],
        category=categories["hair"],
        buffer_before=timedelta(minutes=15),
        buffer_after=timedelta(minutes=15),
        description="Full colour in the colour room, then cut and finish.",
        restrictions="A patch test at least 48 hours before your first colour is required.",
        daily_limit_per_resource=2,
    )
    appointment(
        "scalp-ritual",
        "Scalp ritual",
        minutes=30,
        price="35.00",
        rooms=[treatment_room, colour_room],
        category=categories["wellbeing"],
        buffer_after=timedelta(minutes=10),
        description="Exfoliating scalp treatment and massage in a quiet treatment room.",
    )


def _yoga(loft_location, categories, policies, now) -> None:
    t = time
    maya = _resource(
        loft_location,
        "Maya Lindqvist",
        Resource.Kind.STAFF,
        now=now,
        email="maya@lumen.example",
        hours=[(d, t(7), t(21)) for d in range(7)],
    )
    loft = _resource(
        loft_location, "The Loft", Resource.Kind.ROOM, now=now, hours=[(d, t(6), t(22)) for d in range(7)]
    )
    start = now.astimezone(ZoneInfo(LONDON)).date()
    for slug, name, description, slots in [
        (
            "vinyasa-flow",
            "Vinyasa Flow",
            "A strong, breath-led flow for all levels. 60 minutes.",
            [(1, t(18, 30)), (5, t(10))],
        ),
        (
            "gentle-yoga",
            "Gentle Yoga",
            "Slow stretches and restorative poses; ideal for beginners.",
            [(3, t(9, 30))],
        ),
    ]:
        offering, created = Offering.objects.get_or_create(
            slug=slug,
            defaults={
                "kind": Offering.Kind.CLASS,
                "name": name,
                "location": loft_location,
                "category": categories["yoga"],
                "description": description,
                "price": Decimal("12.00"),
                "currency": "GBP",
                "min_notice": timedelta(minutes=30),
                "waitlist_enabled": True,
                "max_places_per_booking": 4,
                "cancellation_policy": policies["Flexible"],
                "restrictions": "Please arrive 10 minutes early. Not suitable during the first trimester.",
            },
        )
        if created:
            for weekday, at in slots:
                series = SessionSeries.objects.create(
                    offering=offering,
                    weekday=weekday,
                    start_time=at,
                    duration=timedelta(minutes=60),
                    capacity=16,
                    starts_on=start,
                    ends_on=start + timedelta(weeks=12),
                )
                series.resources.set([maya, loft])
        for series in offering.series.all():
            series_generate_sessions(series=series, now=now)


def _concert(hall, categories, policies, now) -> None:
    offering, created = Offering.objects.get_or_create(
        slug="midwinter-strings",
        defaults={
            "kind": Offering.Kind.EVENT,
            "name": "Midwinter Strings",
            "location": hall,
            "category": categories["music"],
            "currency": "GBP",
            "waitlist_enabled": True,
            "max_places_per_booking": 8,
            "cancellation_policy": policies["Tickets"],
            "horizon": timedelta(days=365),
            "description": (
                "The Avon Quartet plays Haydn, Britten and Dvořák's 'American' quartet by candlelight."
            ),
            "restrictions": (
                "Under-16s must be accompanied by an adult. Latecomers admitted at a suitable break."
            ),
        },
    )
    if not created:
        return
    stalls = Zone.objects.create(offering=offering, name="Stalls", capacity=0, is_seated=True, sort_order=1)
    zone_seat_map_generate(zone=stalls, rows=10, seats_per_row=16, now=now)
    standing = Zone.objects.create(offering=offering, name="Standing", capacity=200, sort_order=2)
    adult = TicketType.objects.create(
        offering=offering, name="Stalls – Adult", price=Decimal("38.00"), sort_order=1
    )
    concession = TicketType.objects.create(
        offering=offering,
        name="Stalls – Concession",
        price=Decimal("28.00"),
        sort_order=2,
        description="Students, under-18s and over-65s",
        limit_per_session=40,
    )
    stand = TicketType.objects.create(
        offering=offering, name="Standing", price=Decimal("22.00"), sort_order=3
    )
    adult.zones.set([stalls])
    concession.zones.set([stalls])
    stand.zones.set([standing])
    PriceTier.objects.create(
        ticket_type=stand, name="Early bird", price=Decimal("18.00"), valid_until=now + timedelta(days=14)
    )
    zone = ZoneInfo(LONDON)
    first_friday = _next_weekday(now.astimezone(zone).date() + timedelta(weeks=3), 4)
    for day in (first_friday, first_friday + timedelta(days=1)):
        starts_at = datetime.combine(day, time(19, 30)).replace(tzinfo=zone)
        session_create(
            offering=offering, starts_at=starts_at, ends_at=starts_at + timedelta(hours=2), now=now
        )


def _next_weekday(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday()) % 7)
