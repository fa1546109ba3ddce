"""Fault drills: the real processes serve customers who book the whole time while things break.

    .venv/bin/python bench/faults.py [--clients 4] [--drills worker,redis,postgres,burst]

Runs what production runs, under the same Supervisor as `make run`: gunicorn (`config/gunicorn.py`:
2 processes × 4 threads, pools of 4), a Celery worker (concurrency 2) and beat, against a scratch
database `booking_faults`, a Redis of its own (so stopping it touches nothing else) and the local
mailbox. --clients customers book a free class through its booking form continuously (GET the form,
POST it, wait --think seconds; a 303 to the booking page is a confirmed booking), while, one after
another:

  worker    the Celery worker is killed with -9 (and its pool with it) right after a booking
  redis     Redis is stopped for 45 s, then started again
  postgres  the project-local PostgreSQL is restarted (stop -m fast, start); skipped when
            DATABASE_URL points at a server this script does not own
  burst     200 customers press "book" at the same moment

Prints, per drill: attempts, confirmed, what customers saw (status codes, tracebacks shown) and
p50/p99 latency during the fault. Afterwards: the time until every email was delivered, and per
confirmed booking exactly one confirmation email and one ticket, nothing lost, duplicated or left
half-way (no held booking, no pending or failed outbox message). No calendar is connected here:
calendar pushes ride the same outbox as the emails (drilled in tests/calendarsync).
"""

from __future__ import annotations

import argparse
import collections
import email
import http.cookiejar
import os
import re
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from email import policy
from pathlib import Path
from urllib.parse import urlencode

from _common import (
    collect_static,
    database_empty,
    free_class,
    free_port,
    percentile,
    server_environment,
    setup_django,
    venue,
)

BENCH_DB = "booking_faults"


# --- customers --------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 303 after the form is the answer we measure, not the page it leads to


class Sale:
    """Customers booking through the form; every attempt is recorded as (sent, latency, status, traceback)."""

    def __init__(self, base: str, path: str, think: float) -> None:
        self.base, self.path, self.think = base, path, think
        self.records: list[tuple[float, float, int, bool]] = []
        self.confirmed_keys: list[str] = []
        self._numbers = iter(range(10**9))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def book_once(self, opener: urllib.request.OpenerDirector) -> None:
        with self._lock:
            n = next(self._numbers)
        sent = time.monotonic()
        status, traceback = self._attempt(opener, n)
        with self._lock:
            self.records.append((sent, time.monotonic() - sent, status, traceback))
            if status == 303:
                self.confirmed_keys.append(f"fault-{n}")

    def _attempt(self, opener: urllib.request.OpenerDirector, n: int) -> tuple[int, bool]:
        try:
            with opener.open(self.base + self.path, timeout=60) as response:
                page = response.read()
            token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
            body = urlencode(
                {
                    "csrfmiddlewaretoken": token,
                    "name": f"Customer {n}",
                    "email": f"c{n}@faults.example",
                    "phone": "",
                    "notes": "",
                    "time_zone": "Europe/London",
                    "idempotency_key": f"fault-{n}",
                    "quantity": "1",
                }
            ).encode()
            request = urllib.request.Request(  # noqa: S310 - our own http://127.0.0.1 address
                self.base + self.path, data=body, headers={"Referer": self.base + self.path}
            )
            with opener.open(request, timeout=60) as response:
                return response.status, b"Traceback" in response.read()
        except urllib.error.HTTPError as error:
            return error.code, b"Traceback" in error.read()
        except (OSError, AttributeError):  # refused, reset, timed out; or a page without the form
            return 0, False

    def _customer(self) -> None:
        opener = urllib.request.build_opener(
            _NoRedirect, urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        while not self._stop.is_set():
            self.book_once(opener)
            self._stop.wait(self.think)  # a person, not a script: a moment between two bookings

    def start(self, clients: int) -> None:
        for _ in range(clients):
            thread = threading.Thread(target=self._customer, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)

    def burst(self, customers: int) -> None:
        """*customers* fresh browsers press "book" at the same moment."""
        ready = threading.Barrier(customers)

        def one() -> None:
            opener = urllib.request.build_opener(
                _NoRedirect, urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
            )
            ready.wait()
            self.book_once(opener)

        threads = [threading.Thread(target=one, daemon=True) for _ in range(customers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)

    def window(self, start: float, end: float) -> list[tuple[float, float, int, bool]]:
        with self._lock:
            return [r for r in self.records if start <= r[0] < end]


# --- the stack --------------------------------------------------------------------------------------


def prepare_class():
    database_empty()
    return free_class(
        venue("Drill Hall", "drill-hall", city="Leeds"), "Drill class", places=1_000_000, days_ahead=3
    )


def start_stack(env: dict[str, str], log_path: Path):
    from config.devstack import Supervisor, app_processes_start

    log = log_path.open("a", buffering=1)

    class LoggedSupervisor(Supervisor):
        @staticmethod
        def _pump(name, proc) -> None:
            for raw in iter(proc.stdout.readline, b""):
                log.write(f"{name:<7}| {raw.decode(errors='replace')}")

    supervisor = LoggedSupervisor(env)
    app_processes_start(supervisor, beat_schedule=log_path.parent / "beat-schedule")
    stop = threading.Event()

    def watch() -> None:  # what `make run`'s main loop does
        while not stop.is_set():
            supervisor.restart_crashed()
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()
    return supervisor, stop


# --- the drills -------------------------------------------------------------------------------------


def drill_worker(ctx) -> str:
    pid = ctx.supervisor.procs["worker"].pid
    os.killpg(pid, signal.SIGKILL)  # the worker and its pool, mid-delivery: customers keep booking
    time.sleep(10)
    return f"worker pid {pid} killed with -9; the supervisor restarted it"


def drill_redis(ctx) -> str:
    ctx.redis.stop()
    time.sleep(45)
    ctx.redis.ensure_started()
    return "Redis stopped for 45 s, then started again"


def drill_postgres(ctx) -> str:
    if ctx.postgres is None:
        return "skipped: DATABASE_URL points at a server this script does not own"
    started = time.monotonic()
    ctx.postgres.stop()
    ctx.postgres.ensure_started()
    down = time.monotonic() - started
    time.sleep(5)
    return f"PostgreSQL restarted (down {down:.1f} s)"


def drill_burst(ctx) -> str:
    ctx.sale.burst(200)
    return "200 customers pressed 'book' at once"


DRILLS = {"worker": drill_worker, "redis": drill_redis, "postgres": drill_postgres, "burst": drill_burst}


def describe(records: list[tuple[float, float, int, bool]]) -> str:
    statuses = collections.Counter(status for _, _, status, _ in records)
    latencies = sorted(latency for _, latency, _, _ in records)
    shown = "".join(f" {code or 'no answer'}×{n}" for code, n in sorted(statuses.items()))
    tracebacks = sum(1 for *_, traceback in records if traceback)
    return (
        f"attempts {len(records):>5}, confirmed {statuses.get(303, 0):>5} | answers:{shown} | "
        f"tracebacks shown {tracebacks} | p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms"
    )


# --- afterwards -------------------------------------------------------------------------------------


def mailbox_confirmations(folder: Path) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for path in folder.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["X-Booking-Email"] == "confirmed":
            counts[message["X-Booking-Reference"]] += 1
    return counts


def settle_and_check(sale: Sale, mail_folder: Path, since: float, timeout: float = 600) -> None:
    from django.db import connection
    from django.db.models import Count

    from booking.models import Booking
    from core.outbox.models import OutboxMessage

    connection.close()  # this process's connection did not live through the PostgreSQL restart
    keys = sale.confirmed_keys
    deadline = time.monotonic() + timeout
    while True:
        pending = OutboxMessage.objects.exclude(status="delivered").count()
        references = list(
            Booking.objects.filter(idempotency_key__in=keys).values_list("reference", flat=True)
        )
        mailed = mailbox_confirmations(mail_folder)
        if (not pending and all(mailed[r] for r in references)) or time.monotonic() > deadline:
            break
        time.sleep(1)
    settled = time.monotonic() - since
    bookings = Booking.objects.filter(idempotency_key__in=keys)
    confirmed = bookings.filter(status="confirmed").count()
    tickets = collections.Counter(dict(bookings.annotate(n=Count("tickets")).values_list("reference", "n")))
    print()
    print(f"afterwards (delivery settled {settled:.1f} s after the last drill ended)")
    print(f"  customers shown a confirmation      {len(keys)}")
    print(f"  of them confirmed in the database   {confirmed}   lost: {len(keys) - confirmed}")
    print(f"  confirmation emails: exactly one    {sum(1 for r in references if mailed[r] == 1)}"
          f"   none: {sum(1 for r in references if mailed[r] == 0)}"
          f"   duplicated: {sum(1 for r in references if mailed[r] > 1)}")  # fmt: skip
    print(f"  tickets: exactly one                {sum(1 for r in references if tickets[r] == 1)}"
          f"   none: {sum(1 for r in references if tickets[r] == 0)}"
          f"   duplicated: {sum(1 for r in references if tickets[r] > 1)}")  # fmt: skip
    held = Booking.objects.filter(status="held").count()
    outbox = dict(
        OutboxMessage.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    print(f"  left half-way                       held bookings {held}, outbox {outbox}")


# --- main -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--think", type=float, default=1.0, help="seconds each customer waits between bookings"
    )
    parser.add_argument("--drills", default="worker,redis,postgres,burst")
    args = parser.parse_args()
    drills = [name.strip() for name in args.drills.split(",") if name.strip()]
    unknown = set(drills) - set(DRILLS)
    if unknown:
        raise SystemExit(f"unknown drills: {', '.join(sorted(unknown))}; choose from {', '.join(DRILLS)}")

    owns_postgres = not os.environ.get("DATABASE_URL")
    env = setup_django(BENCH_DB)
    from config.devstack import LocalRedis, Services, _wait_healthy
    from standins.mailbox import Mailbox

    work = Path(tempfile.mkdtemp(prefix="faults-"))
    redis = LocalRedis(work / "redis", persist=False)
    redis.ensure_started()
    mailbox = Mailbox.start(work / "mail")
    offering, session = prepare_class()
    port = free_port()
    child_env = {
        **server_environment(env),
        "REDIS_URL": redis.url(),
        "PORT": str(port),
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(mailbox.port),
        "SITE_URL": f"http://127.0.0.1:{port}",
    }
    collect_static(child_env)
    supervisor, stop_watch = start_stack(child_env, work / "stack.log")
    base = f"http://127.0.0.1:{port}"
    try:
        report = _wait_healthy(f"{base}/healthz", timeout=90)
        if not (report and report["ok"]):
            raise SystemExit(f"the stack did not come up healthy: {report}")
        ctx = argparse.Namespace(
            supervisor=supervisor,
            redis=redis,
            postgres=Services().postgres if owns_postgres else None,
            sale=Sale(base, f"/o/{offering.slug}/book/?session={session.pk}", args.think),
        )
        print(f"fault drills: {args.clients} customers booking continuously ({args.think:g} s between "
              f"bookings), {os.cpu_count()} cores, "
              f"gunicorn 2×4 + Celery worker + beat; log in {work / 'stack.log'}")  # fmt: skip
        ctx.sale.start(args.clients)
        time.sleep(5)
        print(f"{'steady':<9} {describe(ctx.sale.window(0, time.monotonic()))}")
        last_end = time.monotonic()
        for name in drills:
            started = time.monotonic()
            what = DRILLS[name](ctx)
            ended = time.monotonic()
            print(f"{name:<9} {describe(ctx.sale.window(started, ended))}\n          ({what})")
            time.sleep(5)  # the stack settles before the next drill
            print(f"{'  after':<9} {describe(ctx.sale.window(ended, time.monotonic()))}")
            last_end = ended
        ctx.sale.stop()
        print(f"load average {os.getloadavg()[0]:.2f}")
        settle_and_check(ctx.sale, mailbox.folder, since=last_end)
    finally:
        stop_watch.set()
        supervisor.stop()
        mailbox.stop()
        redis.stop()


if __name__ == "__main__":
    main()
