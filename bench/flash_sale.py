"""Flash sale: many customers at once through the booking page's own endpoint, over HTTP.

    .venv/bin/python bench/flash_sale.py [--clients 64] [--attempts 5000] [--places 1000] [--workers 2]
                                         [--mixed] [--no-ceiling]

Serves the app with gunicorn on 127.0.0.1 (plus a Celery worker, as in production) against a scratch
database `booking_flash`, creates a free class with --places places (so every accepted attempt is a
confirmed booking), then --clients keep-alive connections post --attempts booking forms, each with
its CSRF token, its own idempotency key and its own customer, exactly as the booking page does.

Prints accepted bookings/s, p50/p99 latency, errors, and the oversell count (must be 0), checked
against the database afterwards. The whole cost is counted: the run has a Redis database of its own,
emptied first (no task of an earlier run is taken inside this one), emails go to the local mailbox
stand-in (they are sent, not failed and retried), and after the last request the outbox backlog is
printed and the worker given until it is drained; CPU per booking is counted up to then. The worker
runs at the lower CPU priority `make run` gives it (`--worker-nice`, 0 to run it level with the web).

--mixed replays a release: for every booking attempt, five loads of the offering page or of its
live-availability partial (the htmx request the page repeats) from --clients other clients, and
prints their p50/p95/p99 apart. Before the sale the same invocation measures the PostgreSQL ceiling
on this machine (`../shared/peers/pg_ceiling.sh`, one hot row with its CHECK, 4 clients, 10 s,
in a throwaway cluster that is stopped before the app starts) and prints our rate as a share of it
and our CPU per booking as a multiple of PostgreSQL's own, so the figures are ratios from one run.
"""

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    ROOT,
    booking_form,
    collect_static,
    database_empty,
    free_class,
    free_port,
    group_cpu_seconds,
    gunicorn_start,
    machine_busy_seconds,
    named_cpu_seconds,
    percentile,
    pgbouncer_start,
    port_wait,
    process_cpu_seconds,
    redis_of_its_own,
    server_environment,
    setup_django,
    venue,
)

from config.devstack import WORKER_NICE, niced, session_deprioritise  # after _common: it finds the project

BENCH_DB = "booking_flash"
BENCH_REDIS_DB = 13
DRAIN_TIMEOUT_S = 600


def prepare(places: int):
    database_empty()
    return free_class(
        venue("Flash Hall", "flash-hall"), "Launch class", places=places, max_places_per_booking=4
    )


class Client:
    """One customer's browser tab: a keep-alive HTTP/1.1 connection with its cookies."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.cookies: dict[str, str] = {}
        self.writer = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: tuple[str, ...] = ()
    ) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            # connect only to send at once: a sync gunicorn worker holding an idle connection serves
            # nobody else until the request arrives
            await self.connect()
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Connection: keep-alive"]
        head += headers
        if cookie:
            head.append(f"Cookie: {cookie}")
        if body:
            head += [
                "Content-Type: application/x-www-form-urlencoded",
                f"Content-Length: {len(body)}",
                f"Referer: http://{self.host}:{self.port}{path}",
            ]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
            if name.strip().lower() == "set-cookie":
                key, _, rest = value.strip().partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
        length = int(headers.get("content-length", "0"))
        payload = await self.reader.readexactly(length) if length else b""
        if headers.get("connection", "").lower() == "close":
            self.writer.close()
            self.writer = None
        return status, headers, payload


PAGE_LOADS_PER_ATTEMPT = 5
PARTIAL = ("HX-Request: true", "HX-Target: availability")  # what htmx sends when it refreshes the list


async def load(
    ports: list[int], path: str, page: str, clients: int, attempts: int, mixed: bool
) -> tuple[list[tuple[float, float, int]], list[tuple[str, float, int]]]:
    """Run the sale; returns (start offset, latency, status) for every attempt and, with *mixed*,
    (kind, latency, status) for every page load."""
    counter = iter(range(attempts))
    results: list[tuple[float, float, int]] = []
    loads: list[tuple[str, float, int]] = []
    credit = asyncio.Semaphore(0)  # page loads owed: five per booking attempt sent
    selling = True
    started = time.perf_counter()

    async def customer(n: int) -> None:
        client = Client("127.0.0.1", ports[n % len(ports)])  # round-robin, as a load balancer would
        _, _, form = await client.request("GET", path)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1).decode()
        for attempt in counter:
            body = booking_form(attempt, token, run="flash").encode()
            for _ in range(PAGE_LOADS_PER_ATTEMPT if mixed else 0):
                credit.release()
            sent = time.perf_counter()
            try:
                status, _, _ = await client.request("POST", path, body)
            except (ConnectionError, asyncio.IncompleteReadError, IndexError, ValueError):
                status = 0
                client.writer = None
            results.append((sent - started, time.perf_counter() - sent, status))

    async def viewer(n: int) -> None:
        client = Client("127.0.0.1", ports[n % len(ports)])
        while selling or not credit.locked():
            try:
                await asyncio.wait_for(credit.acquire(), timeout=0.5)
            except TimeoutError:
                continue
            kind, headers = ("partial", PARTIAL) if n % 2 else ("page", ())
            sent = time.perf_counter()
            try:
                status, _, _ = await client.request("GET", page, headers=headers)
            except (ConnectionError, asyncio.IncompleteReadError, IndexError, ValueError):
                status = 0
                client.writer = None
            loads.append((kind, time.perf_counter() - sent, status))

    viewers = [asyncio.create_task(viewer(n)) for n in range(clients if mixed else 0)]
    await asyncio.gather(*(customer(n) for n in range(clients)))
    selling = False
    await asyncio.gather(*viewers)
    return results, loads


def pg_ceiling() -> dict[str, float] | None:
    """PostgreSQL alone on this machine, now: one hot row with its CHECK, 4 clients (the peers' script)."""
    script = ROOT.parent / "shared" / "peers" / "pg_ceiling.sh"
    if not script.exists():
        return None
    env = {**os.environ, "DURATION": "10", "CLIENTS": "4", "SCENARIOS": "hot_check", "FSYNC_TEST": "0"}
    env["PGDIR"] = tempfile.mkdtemp(prefix="flash-ceiling-")
    out = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[:2] == ["hot_check", "4"]:
            return {"tps": float(cells[2]), "p99_ms": float(cells[5]), "db_cpu_ms": float(cells[7]) / 1000}
    return None


def outbox_pending() -> int:
    from core.models import OutboxMessage

    return OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING).count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--attempts", type=int, default=5000)
    parser.add_argument("--places", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per gunicorn worker (gthread when > 1)"
    )
    parser.add_argument("--no-celery", action="store_true", help="do not run a Celery worker alongside")
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=WORKER_NICE,
        metavar="N",
        help=f"the Celery worker's CPU priority as `make run` sets it (default {WORKER_NICE}; 0: the web's)",
    )
    parser.add_argument("--mixed", action="store_true", help="five page loads per booking attempt")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the PostgreSQL ceiling run")
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        help="app servers (gunicorn masters on their own ports, round-robin)",
    )
    parser.add_argument(
        "--pgbouncer",
        type=int,
        default=0,
        metavar="POOL",
        help="through PgBouncer (transaction mode), POOL server connections",
    )
    args = parser.parse_args()

    ceiling = None if args.no_ceiling else pg_ceiling()  # first, alone on the machine

    redis_of_its_own(BENCH_REDIS_DB)
    env = setup_django(BENCH_DB)
    offering, session = prepare(args.places)
    ports = [free_port() for _ in range(args.servers)]
    from standins.mailbox import Mailbox

    mailbox = Mailbox.start(Path(tempfile.mkdtemp(prefix="flash-mailbox-")))
    server_env = {**server_environment(env), "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(mailbox.port)}
    collect_static(server_env)
    bouncer = []
    if args.pgbouncer:
        process, url = pgbouncer_start(env["DATABASE_URL"], pool_size=args.pgbouncer)
        bouncer.append(process)
        server_env.update({"DATABASE_URL": url, "DATABASE_BEHIND_PGBOUNCER": "1"})
    processes = [
        gunicorn_start(port=port, workers=args.workers, threads=args.threads, env=server_env)
        for port in ports
    ]
    if not args.no_celery:
        worker = [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "WARNING"]
        worker += ["--concurrency", "1"]
        processes.append(
            subprocess.Popen(
                niced(worker, args.worker_nice),
                cwd=ROOT,
                env=server_env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
            )
        )
        session_deprioritise(processes[-1].pid, args.worker_nice)
    path = f"/o/{offering.slug}/book/?session={session.pk}"
    processes += bouncer  # last: its CPU is counted apart
    try:
        for port in ports:
            port_wait(port)
        app_before = [group_cpu_seconds(p.pid) for p in processes]
        mailbox_before = process_cpu_seconds(mailbox.process.pid)
        postgres_before = named_cpu_seconds("postgres")
        busy_before, own_before = machine_busy_seconds(), time.process_time()
        page = f"/o/{offering.slug}/"
        results, loads = asyncio.run(load(ports, path, page, args.clients, args.attempts, args.mixed))
        sale_ended = time.perf_counter()
        backlog = outbox_pending()
        drained = None
        if not args.no_celery:
            while outbox_pending() and time.perf_counter() - sale_ended < DRAIN_TIMEOUT_S:
                time.sleep(0.2)
            drained = time.perf_counter() - sale_ended if not outbox_pending() else None
        app_cpu = [group_cpu_seconds(p.pid) - b for p, b in zip(processes, app_before, strict=True)]
        mailbox_cpu = process_cpu_seconds(mailbox.process.pid) - mailbox_before
        postgres_cpu = named_cpu_seconds("postgres") - postgres_before
        busy, own = machine_busy_seconds() - busy_before, time.process_time() - own_before
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
        mailbox.stop()
    emails = len(list(mailbox.folder.glob("*.eml")))

    from booking.models import Booking, BookingStatus
    from core.models import OutboxMessage
    from inventory.models import CapacityCounter

    accepted = [r for r in results if r[2] == 303]
    refused = [r for r in results if r[2] == 409]
    errors = [r for r in results if r[2] not in (303, 409)] + [r for r in loads if r[2] != 200]
    counter = CapacityCounter.objects.get(session=session, zone=None, ticket_type=None)
    confirmed = Booking.objects.filter(session=session, status=BookingStatus.CONFIRMED).count()
    sell_out = max(r[0] + r[1] for r in accepted) if accepted else float("nan")
    total = max(r[0] + r[1] for r in results)
    every = sorted(r[1] * 1000 for r in results)
    booked = sorted(r[1] * 1000 for r in accepted)
    n = len(results) + len(loads)
    web_cpu = sum(app_cpu[: args.servers])
    bouncer_cpu = sum(app_cpu[len(app_cpu) - len(bouncer) :])
    celery_cpu = sum(app_cpu) - web_cpu - bouncer_cpu
    # the mailbox stands in for the mail provider's SMTP server: its CPU is not ours, shown apart
    rest_cpu = busy - sum(app_cpu) - own - mailbox_cpu  # PostgreSQL, Redis, the kernel
    web, celery, other = web_cpu / n * 1000, celery_cpu / n * 1000, rest_cpu / n * 1000
    per_booking = max(1, len(accepted))
    dead = OutboxMessage.objects.filter(status=OutboxMessage.Status.DEAD).count()
    oversell = max(0, counter.sold - counter.capacity) + max(0, confirmed - args.places)
    lines = [
        f"# {args.clients} clients, {len(results)} attempts"
        f"{f' and {len(loads)} page loads' if loads else ''}, "
        f"{args.places} places, {args.servers} x gunicorn --workers {args.workers}"
        f"{f', PgBouncer pool {args.pgbouncer}' if bouncer else ''}"
        f"{'' if args.no_celery else ' + celery worker'}, {os.cpu_count()} cores",
        f"accepted bookings        {len(accepted)} in {sell_out:.2f} s  ->  "
        f"{len(accepted) / sell_out:.0f} bookings/s",
        f"all attempts             {len(results)} in {total:.2f} s  ->  "
        f"{len(results) / total:.0f} attempts/s",
        f"latency accepted         p50 {percentile(booked, 0.5):.0f} ms   "
        f"p99 {percentile(booked, 0.99):.0f} ms",
        f"latency all              p50 {percentile(every, 0.5):.0f} ms   "
        f"p99 {percentile(every, 0.99):.0f} ms",
        f"sold out answers (409)   {len(refused)}",
        f"errors                   {len(errors)} {sorted({r[2] for r in errors}) if errors else ''}",
        f"database                 {confirmed} confirmed, counter sold {counter.sold} of {counter.capacity}",
        f"outbox after the sale    {backlog} messages pending; "
        + (
            "no worker"
            if args.no_celery
            else f"drained in {drained:.1f} s"
            if drained is not None
            else f"not drained in {DRAIN_TIMEOUT_S} s"
        )
        + f"; {dead} dead; {emails} emails in the mailbox",
        f"cpu per request          web {web:.1f} ms, celery {celery:.1f} ms, "
        f"{f'pgbouncer {bouncer_cpu / n * 1000:.1f} ms, ' if bouncer else ''}load generator "
        f"{own / n * 1000:.1f} ms, SMTP stand-in {mailbox_cpu / n * 1000:.1f} ms, "
        f"PostgreSQL and the rest {other:.1f} ms (until drained)",
        f"of which PostgreSQL      {postgres_cpu / n * 1000:.1f} ms per request, "
        f"{postgres_cpu / max(1, len(accepted)) * 1000:.1f} ms per booking (its processes alive at the end)",
        f"cpu per booking          web {web_cpu / per_booking * 1000:.1f} ms, celery "
        f"{celery_cpu / per_booking * 1000:.1f} ms, PostgreSQL and the rest "
        f"{(rest_cpu + bouncer_cpu) / per_booking * 1000:.1f} ms (every request's, per confirmed booking)",
        f"oversell                 {oversell}",
    ]
    for kind in ("page", "partial"):
        times = sorted(r[1] * 1000 for r in loads if r[0] == kind)
        if times:
            lines.append(
                f"{kind + ' loads':<25}{len(times)}: p50 {percentile(times, 0.5):.0f} ms   "
                f"p95 {percentile(times, 0.95):.0f} ms   p99 {percentile(times, 0.99):.0f} ms"
            )
    lines.append(f"load average             {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if ceiling and accepted:
        rate = len(accepted) / sell_out
        ours = (busy - own - mailbox_cpu) / per_booking * 1000
        lines.append(
            f"PostgreSQL ceiling       {ceiling['tps']:.0f} bookings/s (one hot row + CHECK, 4 clients, p99 "
            f"{ceiling['p99_ms']:.1f} ms, {ceiling['db_cpu_ms']:.2f} ms of its CPU per booking)"
        )
        lines.append(
            f"ours against it          {rate / ceiling['tps'] * 100:.1f} % of its rate; {ours:.1f} ms of "
            f"machine CPU per booking (not the load generator's or the SMTP stand-in's) = "
            f"{ours / ceiling['db_cpu_ms']:.0f}x its CPU per booking"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
