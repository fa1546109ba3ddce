"""Where a booking request spends its time: one request at a time, in process, no network.

    .venv/bin/python bench/booking_path.py [--bookings 300] [--refusals 300] [--top 25] [--sql]

Posts the booking form of a free class (production settings, Django's test client, a scratch
database `booking_path`) --bookings times until it is full, then --refusals more times at the full
class, exactly as the flash-sale bench does over HTTP. For each kind of answer it prints the CPU per
request of this process, the statements per request and their share of the wall time, and (with
--top) the functions that cost most by cProfile; --sql lists one request's statements. With
--deliver it then delivers every outbox message the bookings caused, as the worker would (emails to
Django's in-memory backend, so rendering counts but no SMTP), and prints CPU and statements per
booking for each handler. Figures, not assertions: compare before and after in one sitting.
"""

import argparse
import cProfile
import io
import os
import pstats
import time

from _common import booking_form, database_empty, free_class, setup_django, venue

BENCH_DB = "booking_path"


def print_profile(profile: cProfile.Profile, top: int) -> None:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(top)
    print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


def measure(client, path: str, token: str, attempts: range, expected: int, profile: cProfile.Profile | None):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    statements, sql_seconds, statuses = 0, 0.0, {}
    cpu, wall = time.process_time(), time.perf_counter()
    example = []
    for attempt in attempts:
        connection.queries_log.clear()  # the log keeps 9,000 statements; the count must not stall there
        with CaptureQueriesContext(connection) as queries:
            if profile:
                profile.enable()
            response = client.post(
                path,
                booking_form(attempt, token, run="path"),
                content_type="application/x-www-form-urlencoded",
            )
            if profile:
                profile.disable()
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        statements += len(queries)
        sql_seconds += sum(float(q["time"]) for q in queries.captured_queries)
        example = example or [q["sql"] for q in queries.captured_queries]
    n = len(attempts)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert statuses.get(expected) == n, f"expected {n} x {expected}, got {statuses}"
    return {
        "cpu_ms": cpu / n * 1000,
        "wall_ms": wall / n * 1000,
        "statements": statements / n,
        "sql_ms": sql_seconds / n * 1000,
        "example": example,
    }


def deliver(bookings: int, top: int, sql: bool = False) -> None:
    """Deliver what the bookings left in the outbox (and what that writes in turn), per handler."""
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from core.models import OutboxMessage
    from core.outbox.services import outbox_message_deliver

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    costs: dict[str, list[float]] = {}  # handler -> [cpu seconds, statements, messages]
    examples: dict[str, list[str]] = {}  # handler -> one delivery's statements
    profile = cProfile.Profile() if top else None
    while pending := list(
        OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING)
        .order_by("pk")
        .values_list("pk", "handler")
    ):
        for message_id, handler in pending:
            connection.queries_log.clear()
            cpu = time.process_time()
            with CaptureQueriesContext(connection) as queries:
                if profile:
                    profile.enable()
                outbox_message_deliver(message_id=message_id, now=timezone.now())
                if profile:
                    profile.disable()
            name = handler.split(".booking.")[0]  # calendarsync.push.booking.confirmed -> calendarsync.push
            cost = costs.setdefault(name, [0.0, 0, 0])
            examples.setdefault(name, [q["sql"] for q in queries.captured_queries])
            cost[0] += time.process_time() - cpu
            cost[1] += len(queries)
            cost[2] += 1
    total = [0.0, 0]
    for handler, (cpu, statements, messages) in sorted(costs.items(), key=lambda kv: -kv[1][0]):
        total[0] += cpu
        total[1] += statements
        print(
            f"  {handler:<34} {messages / bookings:4.1f} messages  cpu {cpu / bookings * 1000:5.2f} ms  "
            f"{statements / bookings:5.1f} statements  (per booking)"
        )
    per_booking = f"cpu {total[0] / bookings * 1000:5.2f} ms   {total[1] / bookings:4.1f} statements"
    print(f"{'worker, all handlers':<18} {per_booking} per booking")
    for handler, statements in examples.items() if sql else ():
        print(f"  {handler}:")
        for n, statement in enumerate(statements, 1):
            print(f"    {n:2}. {statement[:160]}")
    if profile:
        print_profile(profile, top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=300)
    parser.add_argument("--refusals", type=int, default=300)
    parser.add_argument("--top", type=int, default=0, help="print the costliest functions by cProfile")
    parser.add_argument("--sql", action="store_true", help="print one request's statements")
    parser.add_argument("--deliver", action="store_true", help="then deliver the outbox, per handler")
    args = parser.parse_args()

    os.environ.update(
        {"DEBUG": "0", "ALLOWED_HOSTS": "testserver", "SECURE_COOKIES": "0", "LOG_LEVEL": "WARNING"}
    )
    setup_django(BENCH_DB)
    import re

    from django.test import Client

    from core.models import OutboxMessage

    database_empty()
    offering, session = free_class(
        venue("Path Hall", "path-hall"), "Path class", places=args.bookings, max_places_per_booking=4
    )
    client = Client(enforce_csrf_checks=True)
    path = f"/o/{offering.slug}/book/?session={session.pk}"
    page = client.get(path).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    print(f"# booking path, in process; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for label, attempts, status in (
        ("booking (303)", range(args.bookings), 303),
        ("sold out (409)", range(args.bookings, args.bookings + args.refusals), 409),
    ):
        profile = cProfile.Profile() if args.top else None
        before = OutboxMessage.objects.count()
        figures = measure(client, path, token, attempts, status, profile)
        outbox = (OutboxMessage.objects.count() - before) / len(attempts)
        print(
            f"{label:<16} cpu {figures['cpu_ms']:5.2f} ms   wall {figures['wall_ms']:5.2f} ms   "
            f"{figures['statements']:4.1f} statements ({figures['sql_ms']:.2f} ms)   "
            f"{outbox:.1f} outbox rows"
        )
        if args.sql:
            for n, sql in enumerate(figures["example"], 1):
                print(f"    {n:2}. {sql[:160]}")
        if profile:
            print_profile(profile, args.top)
    if args.deliver:
        deliver(args.bookings, args.top, args.sql)
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
