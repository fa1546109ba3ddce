"""`make run`: the whole stack comes up green, serves the site under gunicorn with bounded database
connections through a burst, restarts a crashed worker, and stops cleanly on Ctrl-C or SIGTERM, however
many arrive, leaving no process behind."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from config.devstack import WORKER_NICE, LocalRedis, ServiceWatch
from config.env import redis_url_with_db
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _admin_connection() -> psycopg.Connection:
    db = settings.DATABASES["default"]
    return psycopg.connect(
        dbname="postgres",
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        autocommit=True,
    )


@pytest.fixture
def scratch_database():
    name = f"booking_smoke_{os.getpid()}"
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    db = settings.DATABASES["default"]
    host = (
        db["HOST"].replace("/", "%2F") if db["HOST"].startswith("/") else f"{db['HOST']}:{db['PORT'] or 5432}"
    )
    yield f"postgresql://{db['USER']}@{host}/{name}"
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def _book_a_class_and_find_the_email(base: str, database_url: str, *, emails_before: int = 0) -> None:
    """A booking on the demo site sends its email through the worker to the demo mailbox."""
    import http.cookiejar
    from urllib.parse import urlencode

    with psycopg.connect(_dsn(database_url)) as conn:
        session_id = conn.execute(
            "SELECT s.id FROM inventory_session s JOIN inventory_offering o ON o.id = s.offering_id "
            "WHERE o.slug = 'vinyasa-flow' ORDER BY s.starts_at LIMIT 1"
        ).fetchone()[0]
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form_url = f"{base}/o/vinyasa-flow/book/?session={session_id}"
    page = browser.open(form_url, timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1)
    data = {
        "csrfmiddlewaretoken": token,
        "idempotency_key": key,
        "quantity": "1",
        "name": "Smoke Test",
        "email": "smoke@example.com",
        "phone": "",
        "notes": "",
        "time_zone": "",
    }
    try:  # holds the place, then follows the redirect to the checkout page
        browser.open(
            urllib.request.Request(form_url, data=urlencode(data).encode(), headers={"Referer": form_url})
        )
    except urllib.error.HTTPError as error:
        page = error.read().decode()
        raise AssertionError(re.findall(r'<div class="alert".*?</div>', page, re.S) or page[-2000:]) from None
    login = browser.open(f"{base}/admin/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login).group(1)
    browser.open(
        urllib.request.Request(
            f"{base}/admin/login/?next=/staff/mailbox/",
            data=urlencode({"csrfmiddlewaretoken": token, "username": "admin", "password": "admin"}).encode(),
            headers={"Referer": f"{base}/admin/login/"},
        )
    )

    def mailbox_shows_the_email():
        mailbox = browser.open(f"{base}/staff/mailbox/").read().decode()
        return mailbox.count("Complete your booking: Vinyasa Flow") > emails_before

    wait_until(mailbox_shows_the_email, timeout=30, interval=0.5)


def _dsn(url: str) -> str:
    import dj_database_url

    conf = dj_database_url.parse(url)
    return psycopg.conninfo.make_conninfo(
        dbname=conf["NAME"], user=conf["USER"], host=conf["HOST"] or None, port=conf["PORT"] or None
    )


def _family(pid: int) -> set[int]:
    """The process and every process below it (children, their pool processes …), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    family, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in family}
        grew, family = bool(more - family), family | more
    return family


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


@pytest.mark.django_db
def test_make_run_serves_the_site_restarts_a_crashed_worker_and_stops_cleanly(scratch_database, tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": scratch_database,
        "REDIS_URL": redis_url_with_db(settings.REDIS_URL, 15),
        "PORT": str(port),
        "DEVSTACK_DIR": str(tmp_path / "stack"),  # its own mailbox and Stripe store, not the developer's
    }
    log = (tmp_path / "run.log").open("w+b")
    stack = subprocess.Popen(
        [sys.executable, "-m", "config.devstack", "run"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def output() -> str:
        return (tmp_path / "run.log").read_text(errors="replace")

    def workers_started() -> list[int]:
        return [int(pid) for pid in re.findall(r"\[stack\] worker started \(pid (\d+)\)", output())]

    family: set[int] = set()
    try:
        wait_until(lambda: _get(f"{base}/healthz")[0] == 200, timeout=120, interval=0.5)
        status, body = _get(f"{base}/")
        assert status == 200
        assert b"<h1>" in body
        wait_until(lambda: "Demo login:    admin / admin" in output(), timeout=10)
        _book_a_class_and_find_the_email(base, scratch_database)

        # 100 requests at once, far more than the web server's 2 × 4 threads and their pools of 4
        # connections: each waits its turn (or is told to come back), none fails, PostgreSQL never sees
        # more connections than the bound, and the site serves normally straight after.
        with ThreadPoolExecutor(100) as pool:
            answers = list(pool.map(lambda _: _get(f"{base}/o/gentle-yoga/", timeout=120)[0], range(100)))
        assert set(answers) <= {200, 503} and answers.count(200) >= 50, sorted(answers)
        with _admin_connection() as conn:
            [(connections,)] = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                [scratch_database.rsplit("/", 1)[1]],
            ).fetchall()
        assert connections <= 2 * 4 + 4  # web's pools + the worker's two processes, beat and the stack
        assert _get(f"{base}/")[0] == 200

        [worker] = workers_started()
        crashed = _family(worker)  # the worker and its pool processes
        # bookings win the CPU in a rush: the worker and its pool run at the lower priority
        assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in crashed} == {WORKER_NICE}
        os.kill(worker, signal.SIGKILL)  # the worker crashes; the rest must go on serving
        wait_until(lambda: len(workers_started()) == 2, timeout=30, interval=0.2)
        assert "[stack] worker exited unexpectedly (exit -9); restarting in 1 s" in output()
        wait_until(lambda: not any(_alive(pid) for pid in crashed), timeout=10)  # no orphaned pool left
        assert _get(f"{base}/")[0] == 200
        assert os.getpriority(os.PRIO_PROCESS, workers_started()[1]) == WORKER_NICE  # restarted as it was
        _book_a_class_and_find_the_email(base, scratch_database, emails_before=1)  # the new worker sends it
        family = _family(stack.pid)
    finally:
        # Ctrl-C, then the SIGTERMs a service manager sends when it thinks nothing happened.
        stack.send_signal(signal.SIGINT)
        time.sleep(0.3)
        stack.send_signal(signal.SIGTERM)
        stack.send_signal(signal.SIGTERM)
        code = stack.wait(timeout=90)
    assert code == 0, output()
    assert "[stack] stopped." in output()
    time.sleep(0.5)
    assert _get(f"{base}/")[0] == 0, "the web server is still answering after Ctrl-C"
    assert len(family) > 5  # web, worker and its pool, beat, the stand-ins: all seen
    assert [pid for pid in family if _alive(pid)] == [], output()[-3000:]


def test_an_embedded_redis_that_dies_is_restarted_after_its_back_off(tmp_path, capsys):
    """`make run`'s Redis runs daemonized; killed, it is noticed and started again, after the back-off."""
    redis = LocalRedis(tmp_path / "redis")
    redis.ensure_started()
    owned = []
    try:
        watch = ServiceWatch({"Redis": redis}, owned)
        assert watch.tick() == []  # answering: left alone
        os.kill(int(redis.pidfile.read_text()), signal.SIGKILL)
        wait_until(lambda: watch.tick() == ["Redis"], timeout=15, interval=0.1)
        assert redis.running()
        log = capsys.readouterr().err
        assert "Redis is not answering; restarting it in 1 s" in log
        assert "Redis restarted" in log
        assert owned == [redis]  # stopped with the rest when make run stops
    finally:
        redis.stop()
