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
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - localhost
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


@pytest.mark.django_db
def test_make_run_serves_the_site_green_and_stops_cleanly_on_ctrl_c(scratch_database, tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": scratch_database,
        "REDIS_URL": redis_url_with_db(settings.REDIS_URL, 15),
        "PORT": str(port),
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
    finally:
        stack.send_signal(signal.SIGINT)
        code = stack.wait(timeout=60)
    output = (tmp_path / "run.log").read_text()
    assert code == 0, output
    assert "[stack] stopped." in output
    time.sleep(0.5)
    assert _get(f"{base}/")[0] == 0, "the web server is still answering after Ctrl-C"
