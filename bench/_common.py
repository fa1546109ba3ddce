"""What every benchmark needs: a scratch database of its own and Django set up against it."""

import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def scratch_environment(database: str) -> dict[str, str]:
    """DATABASE_URL for *database* on the configured (or project-local) server, plus REDIS_URL.

    The database is created when missing and migrated; the benchmark owns it and may empty it.
    """
    from config.devstack import Services, _ensure_external_database

    env = Services().environment()
    parts = urlsplit(env["DATABASE_URL"])
    url = urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))
    _ensure_external_database(url)
    return {"DATABASE_URL": url, "REDIS_URL": env["REDIS_URL"]}


def redis_of_its_own(db: int) -> str:
    """Point this run, and every process it starts, at database *db* of the configured Redis, emptied.

    Another database's worker must not take this run's tasks, and tasks an earlier run left behind
    must not be picked up inside this run's window (they would count as this run's work). Call before
    `setup_django`: config.env reads the environment once.
    """
    import redis

    from config.devstack import Services

    parts = urlsplit(Services().environment()["REDIS_URL"])
    if parts.scheme == "unix":
        query = urlencode({**dict(parse_qsl(parts.query)), "db": str(db)})
        url = f"unix://{parts.path}?{query}"  # urlunsplit would drop the empty authority's //
    else:
        url = urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))
    os.environ["REDIS_URL"] = url
    redis.Redis.from_url(url).flushdb()
    return url


def setup_django(database: str) -> dict[str, str]:
    env = scratch_environment(database)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.base"
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "x" * 40)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # production settings render {% static %} from the manifest; a fresh checkout has none yet
    call_command("collectstatic", interactive=False, verbosity=0)
    return env


def database_empty() -> None:
    """Start from nothing: the bench owns its database, so every table of the project is emptied, and
    the users (the staff roles, permissions and content types the migrations made stay)."""
    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.db import connection

    ours = ("core", "inventory", "booking", "payments", "ticketing", "calendarsync")
    tables = [get_user_model()._meta.db_table] + [
        model._meta.db_table
        for model in apps.get_models(include_auto_created=True)
        if model._meta.app_label in ours and not model._meta.proxy
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(sorted(set(tables)))} CASCADE")


def venue(
    name: str, slug: str, *, time_zone: str = "Europe/London", city: str = "Bristol", country: str = "GB"
):
    """A location to sell from; the street does not matter to any bench."""
    from inventory.models import Location

    return Location.objects.create(
        name=name, slug=slug, address_line1="1 Bench Street", city=city, country=country, time_zone=time_zone
    )


def free_class(hall, name: str, *, places: int, days_ahead: int = 2, max_places_per_booking: int = 1):
    """A free class at *hall* with one session of *places*, *days_ahead* from now: every accepted
    booking is confirmed at once. Returns (offering, session)."""
    from datetime import UTC, datetime, timedelta

    from django.utils.text import slugify

    from inventory.models import Offering
    from inventory.services import session_create

    offering = Offering.objects.create(
        kind="class",
        name=name,
        slug=slugify(name),
        location=hall,
        price=0,
        currency="GBP",
        max_places_per_booking=max_places_per_booking,
    )
    now = datetime.now(tz=UTC)
    starts_at = now + timedelta(days=days_ahead)
    session = session_create(
        offering=offering,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1),
        capacity=places,
        now=now,
    )
    return offering, session


def booking_form(attempt: int, csrf_token: str, *, run: str) -> str:
    """The booking page's form for one place, urlencoded as a browser posts it: attempt n is a new
    customer with an idempotency key of its own."""
    return urlencode(
        {
            "csrfmiddlewaretoken": csrf_token,
            "name": f"Customer {attempt}",
            "email": f"c{attempt}@{run}.example",
            "phone": "",
            "notes": "",
            "time_zone": "Europe/London",
            "idempotency_key": f"{run}-{attempt}",
            "quantity": "1",
        }
    )


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


HZ = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / HZ


def _stat(pid: str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (None once the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / HZ  # utime + stime


def group_cpu_seconds(pgid: int) -> float:
    """CPU used by the live processes of a process group (gunicorn master and workers, celery)."""
    groups = (_stat(entry) for entry in os.listdir("/proc") if entry.isdigit())
    return sum(_cpu(fields) for fields in groups if fields and int(fields[2]) == pgid)


def named_cpu_seconds(command: str) -> float:
    """CPU used by the live processes whose command is *command* (PostgreSQL's backends and helpers:
    a backend that exited meanwhile takes its figure with it, so count with lasting connections)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() != command:
                        continue
            except OSError:
                continue
            fields = _stat(entry)
            total += _cpu(fields) if fields else 0.0
    return total


def process_cpu_seconds(pid: int) -> float:
    """CPU used by one process (a child that shares our process group)."""
    fields = _stat(str(pid))
    return _cpu(fields) if fields else 0.0


def port_wait(port: int, *, tries: int = 100) -> None:
    """Wait (up to tries x 0.1 s) until something listens on 127.0.0.1:*port*."""
    import time

    for _ in range(tries):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_environment(env: dict[str, str]) -> dict[str, str]:
    """The environment of the app processes a bench starts: production settings, quiet logs."""
    return {
        **os.environ,
        **env,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_COOKIES": "0",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
    }


def collect_static(env: dict[str, str]) -> None:
    """Production settings serve static files from the manifest `collectstatic` writes."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )


def gunicorn_start(
    *, port: int, workers: int, threads: int, env: dict[str, str], extra: tuple[str, ...] = ()
) -> subprocess.Popen:
    """The app under gunicorn on 127.0.0.1:*port*, in a process group of its own (for CPU accounting)."""
    return subprocess.Popen(
        [
            f"{os.path.dirname(sys.executable)}/gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--log-level",
            "warning",
            "--keep-alive",
            "30",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )


def pgbouncer_start(database_url: str, *, pool_size: int) -> tuple[subprocess.Popen, str]:
    """PgBouncer in transaction pooling mode in front of *database_url*'s server, on a free port.

    Returns the process (in a group of its own) and the DATABASE_URL to give the app processes. The
    app must then run with DATABASE_BEHIND_PGBOUNCER=1 (no prepared statements, no server-side
    cursors). Needs the `pgbouncer` binary (Debian: `apt install pgbouncer`).
    """
    import shutil
    import tempfile
    from urllib.parse import unquote

    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        raise SystemExit("--pgbouncer needs the pgbouncer binary (Debian: apt install pgbouncer)")
    parts = urlsplit(database_url)
    location = parts.netloc.rsplit("@", 1)[-1]  # not .hostname: it lowercases a socket directory
    host = unquote(location) if location.startswith("%2F") else (parts.hostname or "127.0.0.1")
    user = parts.username or "postgres"
    dbname = parts.path.lstrip("/")
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="bench-pgbouncer-"))
    folder.chmod(0o777)
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"{dbname} = host={host} port={parts.port or 5432} dbname={dbname} user={user}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = any\npool_mode = transaction\n"
        f"default_pool_size = {pool_size}\nmax_client_conn = 1000\n"
        f"logfile = {folder}/pgbouncer.log\npidfile = {folder}/pgbouncer.pid\n"
    )
    command = [binary, "-q", str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        command[1:1] = ["-u", "postgres"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL)
    port_wait(port, tries=50)
    return process, f"postgresql://{user}@127.0.0.1:{port}/{dbname}"
