"""Calendar sync: a staff member's year of external events imported as busy time, then kept current.

    .venv/bin/python bench/calendarsync.py [--events 5000] [--changes 100] [--pushes 50]
                                           [--caldav-events 1000] [--no-caldav] [--profile]

Builds a scratch database `booking_calsync` (on DATABASE_URL's server, or the project-local one that
`make run` uses) with a Paris location and one staff member per provider, and for each provider:

1. Initial import: the staff member's calendar holds --events events spread over the next year (some
   all-day, some free/transparent, written in several time zones); the calendar is connected with
   `connection_create` and the first `calendar_sync` is timed end to end: the provider's HTTP pages
   through the real client library (google-api-python-client: pages of 2,500; msal + requests over
   TLS to Graph: pages of the adapter's PAGE_SIZE), the database writes, and the push channel opened
   afterwards. Wall time, events/s, busy blocks written, queries (and their SQL time), the provider
   share (fetch and parse, of which the in-process stand-in's own serving), and peak memory: the
   RSS high-water mark's growth during the timed run, and the tracemalloc peak of a second, identical
   import (another staff member on the same calendar), so that tracing does not slow the timed run.
2. Incremental: --changes changes on the provider's side (40 % moved, 30 % deleted, 30 % new), then
   the next `calendar_sync` timed; what it wrote and removed, and whether the busy blocks in the
   database now match the provider's events exactly ("consistent: yes/no"). Also the cost of a sync
   that finds nothing new (the periodic safety-net sweep).
3. Push -> sync, --pushes times: one event created on the provider's side, its push notification
   reaching a receiver at SITE_URL, then `calendar_sync`; p50/p99 of the whole and of each part. That
   is what decides "the availability engine sees the new busy time within seconds of the push" (the
   Django view and the Celery queue hop in between are not included).

Google and Microsoft are the local stand-ins (standins), started in-process, the events put
in through their control methods (no HTTP); CalDAV is a real Radicale in a child process, loaded with
one PUT of the whole collection, and with --caldav-events events (Radicale rewrites its caches on
every single PUT, so 5,000 events make each change on the phone side take most of a second; the
output says when the count was reduced). CalDAV has no push: its row is "change -> next sync".

Figures are printed, not asserted; the machine's load average is printed with them, as other work on
the same cores shows up in every time. Target from issue 9: the new busy time visible within seconds
of the push.

The calendars themselves (the events of a year, the three providers, the push receiver) are in
`_calendar_providers.py`; this script is the scenario and its figures.
"""

import argparse
import cProfile
import io
import os
import pstats
import random
import resource as rusage
import statistics
import time as clock
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, datetime
from unittest import mock

from _calendar_providers import (
    LOCATION_ZONE,
    STAFF_EMAIL,
    ZONES,
    CalDAV,
    Google,
    Microsoft,
    Provider,
    PushReceiver,
    StandInMeter,
    moved,
    plan_event,
)
from _common import database_empty, percentile, redis_of_its_own, setup_django, venue

BENCH_DB = "booking_calsync"
BENCH_REDIS_DB = 12


EMPTY_SYNC_RUNS = 10
PUSH_TIMEOUT_S = 10


STANDIN_NOTE = "; includes the in-process stand-in building its pages"


# --- measuring one sync -------------------------------------------------------------------------


@dataclass
class Measured:
    wall: float = 0.0
    provider: float = 0.0  # adapter.changes: HTTP pages fetched and parsed
    apply: float = 0.0  # the one database transaction that writes the busy blocks
    served: float = 0.0  # of `provider`: the in-process stand-in building its answers
    requests: int = 0
    queries: int = 0
    sql: float = 0.0
    cpu: float = 0.0  # CPU of this whole process (the in-process stand-ins included)
    rss_growth_mb: float = 0.0
    traced_peak_mb: float | None = None
    result: object = None
    profile: str = ""
    stats: dict = field(default_factory=dict)


def measured_sync(connection_id: int, meter: StandInMeter | None, *, trace=False, profile=False) -> Measured:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from calendarsync import services

    out = Measured()
    real_apply, real_adapter_for = services._apply, services.adapter_for

    def apply(*args, **kwargs):
        started = clock.perf_counter()
        try:
            return real_apply(*args, **kwargs)
        finally:
            out.apply += clock.perf_counter() - started

    def adapter_for(conn):
        adapter = real_adapter_for(conn)
        real_changes = adapter.changes

        def changes(**kwargs):
            started = clock.perf_counter()
            try:
                return real_changes(**kwargs)
            finally:
                out.provider += clock.perf_counter() - started

        adapter.changes = changes
        return adapter

    before = (meter.requests, meter.seconds) if meter else (0, 0.0)
    rss_before = rusage.getrusage(rusage.RUSAGE_SELF).ru_maxrss
    profiler = cProfile.Profile() if profile else None
    with (
        mock.patch.object(services, "_apply", apply),
        mock.patch.object(services, "adapter_for", adapter_for),
        CaptureQueriesContext(connection) as captured,
    ):
        if trace:
            tracemalloc.start()
        started, cpu = clock.perf_counter(), clock.process_time()
        if profiler:
            profiler.enable()
        out.result = services.calendar_sync(connection_id=connection_id, now=datetime.now(tz=UTC))
        if profiler:
            profiler.disable()
        out.wall, out.cpu = clock.perf_counter() - started, clock.process_time() - cpu
        if trace:
            out.traced_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    out.rss_growth_mb = (rusage.getrusage(rusage.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    out.queries = len(captured)
    out.sql = sum(float(q["time"]) for q in captured.captured_queries)
    if meter:
        out.requests, out.served = meter.requests - before[0], meter.seconds - before[1]
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
        out.profile = text.getvalue()
    return out


def describe(result) -> str:
    return (
        f"{'full' if result.full else 'incremental'}: wrote {result.busy_written}, "
        f"removed {result.busy_removed}, flagged {result.flagged}"
    )


def provider_part(m: Measured, in_process: bool) -> str:
    if not in_process:
        return f"provider {m.provider:.2f} s (Radicale, another process)"
    return (
        f"provider {m.provider:.2f} s ({m.requests} HTTP requests; the in-process stand-in answering "
        f"them {m.served:.2f} s of it)"
    )


def import_lines(
    label: str, events: int, m: Measured, replica: Measured | None, in_process: bool
) -> list[str]:
    lines = [
        f"{label:<30}{m.wall:7.2f} s   {events / m.wall:7.0f} events/s   {describe(m.result)}",
        f"{'':<30}{provider_part(m, in_process)}   database transaction {m.apply:.2f} s   rest (push "
        f"channel, connection) {m.wall - m.provider - m.apply:.2f} s",
        f"{'':<30}{m.queries} queries, {m.sql:.2f} s of SQL   CPU of this process {m.cpu:.2f} s   "
        f"max RSS +{m.rss_growth_mb:.0f} MB",
    ]
    if replica is not None:
        lines.append(
            f"{'':<30}traced peak {replica.traced_peak_mb:.0f} MB (an identical import under tracemalloc, "
            f"{replica.wall:.1f} s{STANDIN_NOTE if in_process else ''})"
        )
    return lines


def change_lines(label: str, m: Measured, consistent: str, in_process: bool) -> list[str]:
    return [
        f"{label:<30}{m.wall * 1000:7.0f} ms   {describe(m.result)}   {m.queries} queries "
        f"({m.sql * 1000:.0f} ms SQL), provider {m.provider * 1000:.0f} ms"
        + (f" ({m.requests} HTTP requests)" if in_process else ""),
        f"{'':<30}consistent: {consistent}",
    ]


def check(source: str, expected: dict[str, tuple[datetime, datetime]]) -> str:
    """Whether the connection's busy blocks are exactly the busy events of the calendar."""
    from inventory.models import BusyBlock

    stored = {
        external_id: (starts, ends)
        for external_id, starts, ends in BusyBlock.objects.filter(source=source).values_list(
            "external_id", "starts_at", "ends_at"
        )
    }
    missing = expected.keys() - stored.keys()
    extra = stored.keys() - expected.keys()
    wrong = sum(1 for k in expected.keys() & stored.keys() if expected[k] != stored[k])
    if os.environ.get("BENCH_DEBUG") and (missing or extra or wrong):
        print("missing", [(k, expected[k]) for k in missing], "extra", [(k, stored[k]) for k in extra])
    if not (missing or extra or wrong):
        return f"yes ({len(stored)} busy blocks = the calendar's {len(expected)} busy events)"
    return f"NO: {len(missing)} missing, {len(extra)} extra, {wrong} at the wrong time (of {len(expected)})"


def quantiles(values: list[float]) -> str:
    values = sorted(v * 1000 for v in values)
    return f"p50 {statistics.median(values):6.0f} ms  p99 {percentile(values, 0.99):6.0f} ms"


# --- the run --------------------------------------------------------------------------------------


def build(now: datetime):
    database_empty()
    return venue("Atelier Rivoli", "atelier-rivoli", time_zone=LOCATION_ZONE, city="Paris", country="FR")


def staff_member(location, name: str, now: datetime):
    from inventory.models import Resource
    from inventory.services import resource_save

    return resource_save(
        resource=Resource(location=location, name=name, kind="staff", email=STAFF_EMAIL), now=now
    )


def run_provider(provider: Provider, location, args, receiver: PushReceiver) -> list[str]:
    from django.test import override_settings

    from calendarsync.services import connection_disconnect
    from inventory.models import BusyBlock

    rng, now = provider.rng, provider.now
    events = args.caldav_events if isinstance(provider, CalDAV) else args.events
    changes = args.changes
    pushes = args.caldav_pushes if isinstance(provider, CalDAV) else args.pushes
    lines = [f"## {provider.name}"]
    if events != args.events:
        lines.append(f"   (reduced: {events:,} events instead of {args.events:,}; see the docstring)")
    started = clock.perf_counter()
    provider.load([plan_event(rng, now, n) for n in range(events)])
    all_day = sum(s.all_day for s in provider.specs.values())
    free = sum(not s.busy for s in provider.specs.values())
    lines.append(
        f"   calendar: {len(provider.specs):,} events over the next year ({all_day} all-day, {free} free/"
        f"transparent, written in {len(ZONES)} zones), put in in {clock.perf_counter() - started:.1f} s"
    )
    with override_settings(SITE_URL=receiver.url, **provider.settings):
        person = staff_member(location, f"{provider.name} staff", now)
        conn = provider.connect(person)

        # 1. the initial import
        first = measured_sync(conn.pk, provider.meter, profile=args.profile)
        replica = None
        if not args.no_replica:
            twin = provider.connect(staff_member(location, f"{provider.name} twin", now))
            replica = measured_sync(twin.pk, provider.meter, trace=True)
            connection_disconnect(connection=twin, now=now)
        in_process = provider.meter is not None
        lines += import_lines(f"initial import ({events:,})", events, first, replica, in_process)
        lines.append(f"{'':<30}consistent: {check(conn.source, provider.expected())}")

        # 2. nothing changed, then --changes changes
        empty = [measured_sync(conn.pk, provider.meter) for _ in range(EMPTY_SYNC_RUNS)]
        lines.append(
            f"{'sync, nothing changed':<30}{statistics.median(m.wall for m in empty) * 1000:7.0f} ms median "
            f"of {EMPTY_SYNC_RUNS}   {empty[-1].queries} queries"
            + (f", {empty[-1].requests} HTTP requests" if in_process else "")
        )
        ids = list(provider.specs)
        rng.shuffle(ids)
        n_moved, n_deleted = round(changes * 0.4), round(changes * 0.3)
        n_new = changes - n_moved - n_deleted
        started = clock.perf_counter()
        for event_id in ids[:n_moved]:
            provider.move(event_id, moved(provider.specs[event_id], rng, now))
        for event_id in ids[n_moved : n_moved + n_deleted]:
            provider.delete(event_id)
        for n in range(n_new):
            provider.create(plan_event(rng, now, events + n))
        made = clock.perf_counter() - started
        receiver.drain()
        incremental = measured_sync(conn.pk, provider.meter)
        lines += change_lines(
            f"{changes} changes ({n_moved}/{n_deleted}/{n_new})",
            incremental,
            check(conn.source, provider.expected()),
            in_process,
        )
        lines[-2] += f"   (made in {made:.1f} s)"

        # 3. one change, then the sync that brings it
        delivered, synced, served, total = [], [], [], []
        for n in range(pushes):
            receiver.drain()
            spec = plan_event(rng, now, 900_000 + n, within_days=7)
            spec.busy = True
            t0 = clock.perf_counter()
            event_id = provider.create(spec)
            # CalDAV has no push: the sync follows the change at once (in life, at the next sweep).
            t1 = receiver.arrivals.get(timeout=PUSH_TIMEOUT_S) if provider.has_push else clock.perf_counter()
            m = measured_sync(conn.pk, provider.meter)
            t2 = t1 + m.wall
            if not BusyBlock.objects.filter(source=conn.source, external_id=event_id[:255]).exists():
                lines.append(f"   !! push {n}: the new event is not busy time after the sync")
            delivered.append(t1 - t0)
            synced.append(m.wall)
            served.append(m.served)
            total.append(t2 - t0)
        if provider.has_push:
            lines.append(f"{f'push -> sync ({pushes}x)':<30}{quantiles(total)}   (whole)")
            lines.append(f"{'':<30}{quantiles(delivered)}   (create -> notification received)")
            lines.append(f"{'':<30}{quantiles(synced)}   (calendar_sync)")
            lines.append(f"{'':<30}{quantiles(served)}   (of it, the in-process stand-in answering)")
        else:
            lines.append(f"{f'change -> sync ({pushes}x)':<30}{quantiles(total)}   (PUT on the phone + sync)")
            lines.append(f"{'':<30}{quantiles(synced)}   (calendar_sync; no push: waits for the sweep)")
        lines.append(f"{'':<30}consistent: {check(conn.source, provider.expected())}")
    if first.profile:
        lines += ["", f"# profile of the initial import ({provider.name}), top 30 by cumulative time:"]
        lines += first.profile.splitlines()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--pushes", type=int, default=50)
    parser.add_argument("--caldav-events", type=int, default=1000)
    parser.add_argument("--caldav-pushes", type=int, default=10)
    parser.add_argument("--no-caldav", action="store_true")
    parser.add_argument("--only", choices=["google", "microsoft", "caldav"])
    parser.add_argument("--no-replica", action="store_true", help="skip the traced second import")
    parser.add_argument("--profile", action="store_true", help="cProfile each initial import")
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()

    load_before = os.getloadavg()
    # Own Redis database: connection_create queues a Celery sync, and another database's worker must
    # not take it. The bench runs every sync itself, so the queued task is dropped as well.
    redis_of_its_own(BENCH_REDIS_DB)
    setup_django(BENCH_DB)

    from django.urls import reverse

    from calendarsync.providers import caldav, google, microsoft  # noqa: F401 - warm, as in a worker
    from calendarsync.tasks import calendar_sync_task

    reverse("calendarsync:push_google")  # the URLconf, loaded once per worker process

    now = datetime.now(tz=UTC)
    location = build(now)
    receiver = PushReceiver()
    print(
        f"# calendar sync, issue 9; {os.cpu_count()} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in load_before)} at the start; SITE_URL (push receiver) {receiver.url}"
    )
    chosen = [Google, Microsoft] + ([] if args.no_caldav else [CalDAV])
    if args.only:
        chosen = [{"google": Google, "microsoft": Microsoft, "caldav": CalDAV}[args.only]]
    try:
        with mock.patch.object(calendar_sync_task, "delay"):
            for index, kind in enumerate(chosen):
                provider = kind(random.Random(args.seed + index), now)
                try:
                    print("\n".join(run_provider(provider, location, args, receiver)), flush=True)
                finally:
                    provider.stop()
    finally:
        receiver.stop()
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
