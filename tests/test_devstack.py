"""`make run`: the whole stack comes up green, serves the site, and stops cleanly on Ctrl-C."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

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


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def _book_a_class_and_find_the_email(base: str, database_url: str) -> None:
    """A booking on the demo site sends its email through the worker to the demo mailbox."""
    import http.cookiejar
    import re
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
        return "Complete your booking: Vinyasa Flow" in browser.open(f"{base}/staff/mailbox/").read().decode()

    wait_until(mailbox_shows_the_email, timeout=30, interval=0.5)


def _dsn(url: str) -> str:
    import dj_database_url

    conf = dj_database_url.parse(url)
    return psycopg.conninfo.make_conninfo(
        dbname=conf["NAME"], user=conf["USER"], host=conf["HOST"] or None, port=conf["PORT"] or None
    )


@pytest.mark.django_db
def test_make_run_serves_the_site_with_its_worker_and_stops_cleanly_on_ctrl_c(scratch_database, tmp_path):
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
    try:
        wait_until(lambda: _get(f"{base}/healthz")[0] == 200, timeout=120, interval=0.5)
        status, body = _get(f"{base}/")
        assert status == 200
        assert b"<h1>" in body
        wait_until(lambda: b"Demo login:    admin / admin" in (tmp_path / "run.log").read_bytes(), timeout=10)
        _book_a_class_and_find_the_email(base, scratch_database)
    finally:
        stack.send_signal(signal.SIGINT)
        code = stack.wait(timeout=60)
    output = (tmp_path / "run.log").read_text()
    assert code == 0, output
    assert "[stack] stopped." in output
    time.sleep(0.5)
    assert _get(f"{base}/")[0] == 0, "the web server is still answering after Ctrl-C"
