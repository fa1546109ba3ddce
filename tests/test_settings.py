"""Production defaults are the safe ones; developers opt into the convenient ones explicitly."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json
from django.conf import settings
print(json.dumps({name: getattr(settings, name) for name in %r}, default=str))
"""


def settings_with(env: dict[str, str], *names: str) -> dict:
    """Load config.settings.base in a fresh interpreter with exactly *env* (plus the service URLs)."""
    clean = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": "postgresql://app@db.internal:5432/booking",
        "REDIS_URL": "redis://cache.internal:6379/0",
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()" + PROBE % (names,)],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1])
    return json.loads(result.stdout)


def test_with_only_the_required_variables_the_site_runs_locked_down():
    s = settings_with(
        {"SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "book.example.com"},
        "DEBUG",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "ALLOWED_HOSTS",
        "SECURE_SSL_REDIRECT",
        "X_FRAME_OPTIONS",
        "SECURE_CONTENT_TYPE_NOSNIFF",
    )
    assert s == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 0,
        "ALLOWED_HOSTS": ["book.example.com"],
        "SECURE_SSL_REDIRECT": False,
        "X_FRAME_OPTIONS": "DENY",
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
    }


def test_hsts_is_switched_on_by_its_flag():
    s = settings_with(
        {"SECRET_KEY": "x" * 50, "SECURE_HSTS_SECONDS": "31536000"},
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
    )
    assert s == {
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": False,
    }


def test_debug_must_be_asked_for_and_then_relaxes_cookies_for_plain_http():
    s = settings_with({"DEBUG": "1"}, "DEBUG", "SESSION_COOKIE_SECURE", "ALLOWED_HOSTS")
    assert s == {
        "DEBUG": True,
        "SESSION_COOKIE_SECURE": False,
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost", "[::1]"],
    }


def test_without_a_secret_key_in_production_nothing_can_be_signed():
    with pytest.raises(RuntimeError, match="The SECRET_KEY setting must not be empty"):
        settings_with({}, "SECRET_KEY")


def test_a_missing_database_url_says_how_to_set_it():
    with pytest.raises(RuntimeError, match="DATABASE_URL is not set"):
        settings_with({"SECRET_KEY": "x" * 50, "DATABASE_URL": ""}, "DEBUG")


def test_a_malformed_flag_is_refused_with_its_name():
    with pytest.raises(RuntimeError, match=r"DEBUG='maybe' is not a boolean"):
        settings_with({"DEBUG": "maybe"}, "DEBUG")


def test_the_broker_and_cache_follow_redis_url_including_unix_sockets():
    s = settings_with(
        {"SECRET_KEY": "x" * 50, "REDIS_URL": "unix:///run/redis/redis.sock?db=2"},
        "CELERY_BROKER_URL",
        "CACHES",
    )
    assert s["CELERY_BROKER_URL"] == "redis+socket:///run/redis/redis.sock?virtual_host=2"
    assert s["CACHES"]["default"]["LOCATION"] == "unix:///run/redis/redis.sock?db=2"


def test_the_deployment_checklist_passes_with_production_settings():
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": "postgresql://app@db.internal:5432/booking",
        "REDIS_URL": "redis://cache.internal:6379/0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "book.example.com",
        "SECURE_SSL_REDIRECT": "1",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_PRELOAD": "1",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_behind_pgbouncer_nothing_outlives_a_transaction():
    """Transaction pooling lends a server connection per transaction: no prepared statement or
    server-side cursor may be left on one for the next transaction to miss."""
    env = {"SECRET_KEY": "x" * 50}
    direct = settings_with(env, "DATABASES")["DATABASES"]["default"]
    pooled = settings_with({**env, "DATABASE_BEHIND_PGBOUNCER": "1"}, "DATABASES")["DATABASES"]["default"]
    assert direct["OPTIONS"]["server_side_binding"] is True and not direct["DISABLE_SERVER_SIDE_CURSORS"]
    assert pooled["OPTIONS"]["server_side_binding"] is False and pooled["DISABLE_SERVER_SIDE_CURSORS"]
