"""Availability engine and search under a realistic load.

    .venv/bin/python bench/availability.py [--runs 50]

Builds a scratch database `booking_bench` (on DATABASE_URL's server, or the project-local one that
`make run` uses) with an appointment offering served by 20 staff and 3 rooms, 5,000 existing
allocations and 2,000 busy blocks over the month, plus classes and an event for the search; then
times a month of slots (engine plus its queries) and a week's search across all offerings.
Targets from issue 3: engine p95 < 50 ms, search p95 < 100 ms.
"""

import argparse
import random
import statistics
import time as clock
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from _common import database_empty, percentile, setup_django, venue

BENCH_DB = "booking_bench"


def build(now: datetime, rng: random.Random):

    from inventory.models import Allocation, BusyBlock, Offering, Resource, ResourceRequirement
    from inventory.services import resource_save, session_create, working_hours_replace

    database_empty()
    london = venue("Bench Spa", "bench-spa")
    staff = []
    for n in range(20):
        person = resource_save(
            resource=Resource(location=london, name=f"Therapist {n}", kind="staff"), now=now
        )
        working_hours_replace(resource=person, periods=[(d, time(9), time(18)) for d in range(6)])
        staff.append(person)
    rooms = []
    for n in range(3):
        room = resource_save(resource=Resource(location=london, name=f"Room {n}", kind="room"), now=now)
        working_hours_replace(resource=room, periods=[(d, time(8), time(20)) for d in range(7)])
        rooms.append(room)

    def appointment(slug, minutes, price):
        offering = Offering.objects.create(
            kind="appointment",
            name=slug.title(),
            slug=slug,
            location=london,
            price=Decimal(price),
            currency="GBP",
            duration=timedelta(minutes=minutes),
            slot_interval=timedelta(minutes=15),
            buffer_before=timedelta(minutes=10),
            buffer_after=timedelta(minutes=10),
            horizon=timedelta(days=90),
        )
        therapist = ResourceRequirement.objects.create(offering=offering, label="Therapist")
        therapist.candidates.set(staff)
        room = ResourceRequirement.objects.create(offering=offering, label="Room")
        room.candidates.set(rooms)
        return offering

    massage = appointment("massage", 60, "70.00")
    for n, minutes in enumerate([30, 45, 90, 120]):
        appointment(f"treatment-{n}", minutes, f"{40 + 10 * n}.00")

    # 5,000 allocations that do not overlap on any unit (each resource-day filled left to right with
    # random gaps and lengths, up to eight a day), and 2,000 busy blocks, over 30 days.
    start_day = now.date()
    allocations = []
    resources = staff + rooms
    for resource in resources:
        unit = resource.units.get()
        for day in range(30):
            cursor = datetime.combine(start_day + timedelta(days=day), time(8)).replace(tzinfo=UTC)
            for _ in range(8):
                cursor += timedelta(minutes=15 * rng.randrange(0, 4))
                minutes = rng.choice([30, 45, 60])
                begins = cursor + timedelta(minutes=10)
                allocations.append(
                    Allocation(
                        unit=unit,
                        resource=resource,
                        offering=massage,
                        starts_at=begins,
                        span=(cursor, begins + timedelta(minutes=minutes + 10)),
                        ends_at=begins + timedelta(minutes=minutes),
                        holder=f"bench:{len(allocations)}",
                        created_at=now,
                    )
                )
                cursor = begins + timedelta(minutes=minutes + 10)
    rng.shuffle(allocations)
    allocations = allocations[:5000]
    Allocation.objects.bulk_create(allocations, batch_size=1000)
    blocks = []
    for n in range(2000):
        begins = datetime.combine(start_day + timedelta(days=rng.randrange(30)), time(7)).replace(
            tzinfo=UTC
        ) + timedelta(minutes=30 * rng.randrange(24))
        blocks.append(
            BusyBlock(
                resource=rng.choice(staff),
                starts_at=begins,
                ends_at=begins + timedelta(minutes=30 * rng.randint(1, 4)),
                source="bench",
                external_id=f"b{n}",
                updated_at=now,
            )
        )
    BusyBlock.objects.bulk_create(blocks, batch_size=1000)

    for n in range(3):
        yoga = Offering.objects.create(
            kind="class",
            name=f"Class {n}",
            slug=f"class-{n}",
            location=london,
            price=Decimal("12.00"),
            currency="GBP",
        )
        for d in range(30):
            begins = datetime.combine(start_day + timedelta(days=d), time(17 + n)).replace(tzinfo=UTC)
            session_create(
                offering=yoga, starts_at=begins, ends_at=begins + timedelta(hours=1), capacity=20, now=now
            )
    return massage


def measure(label, fn, runs):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fn()  # warm caches (zoneinfo, prepared plans) as a running server would have them
    timings = []
    queries = 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = clock.perf_counter()
            result = fn()
            timings.append((clock.perf_counter() - started) * 1000)
        queries = len(captured)
    timings.sort()
    p50 = statistics.median(timings)
    p95 = percentile(timings, 0.95)
    print(f"{label:<48} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   queries {queries:3d}   ({result})")
    return p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    setup_django(BENCH_DB)

    from inventory.availability import appointment_slots
    from inventory.selectors import SearchFilters, appointment_inputs, appointment_slot_list, offering_search

    now = datetime.combine(datetime.now(tz=UTC).date(), time(6)).replace(tzinfo=UTC)
    started = clock.perf_counter()
    massage = build(now, random.Random(42))
    print(
        "# built 20 staff, 3 rooms, 5,000 allocations, 2,000 busy blocks "
        f"in {clock.perf_counter() - started:.1f}s"
    )
    month = (now, now + timedelta(days=30))

    def engine_month():
        return f"{len(appointment_slot_list(offering=massage, start=month[0], end=month[1], now=now))} slots"

    rules, calendars = appointment_inputs(offerings=[massage], start=month[0], end=month[1])

    def engine_only():
        slots = appointment_slots(
            rules=rules[massage.pk], calendars=calendars, start=month[0], end=month[1], now=now
        )
        return f"{len(slots)} slots"

    week = SearchFilters(date_from=now.date(), date_to=now.date() + timedelta(days=6))

    def search_week():
        return f"{len(offering_search(filters=week, now=now))} offerings"

    engine_p95 = measure("month of slots (queries + engine)", engine_month, args.runs)
    measure("  of which the pure engine (data in memory)", engine_only, args.runs)
    search_p95 = measure("search, one week, all offerings", search_week, args.runs)
    print(
        f"# targets: engine p95 < 50 ms: {'met' if engine_p95 < 50 else 'MISSED'}; "
        f"search p95 < 100 ms: {'met' if search_p95 < 100 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
