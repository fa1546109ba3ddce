"""The only module that reads the process environment.

Settings modules import the values from here, so a reviewer can see every knob the deployment has in
one place, with its type and default. Defaults are the safe production choice; `make run` and the test
settings opt into the developer-friendly ones explicitly.
"""

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ImproperlyConfigured(f"The environment variable {name} must be set.")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off).")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def redis_url_with_db(url: str, db: int) -> str:
    """Return `url` pointing at logical database `db` (works for redis://, rediss:// and unix://)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(db)
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


def celery_broker_url(redis_url: str) -> str:
    """Translate a redis-py URL into kombu's spelling.

    kombu names UNIX sockets `redis+socket:///path` and takes the database as `virtual_host`.
    """
    parts = urlsplit(redis_url)
    if parts.scheme != "unix":
        return redis_url
    query = dict(parse_qsl(parts.query))
    db = query.pop("db", "0")
    query["virtual_host"] = db
    return f"redis+socket://{parts.path}?{urlencode(query)}"


# --- the environment, read once -----------------------------------------------------------------

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

DATABASE_URL = env_str("DATABASE_URL")
DATABASE_CONN_MAX_AGE = env_int("DATABASE_CONN_MAX_AGE", 60)
DATABASE_POOL_MAX = env_int("DATABASE_POOL_MAX", 0)  # 0: no pool, persistent connections instead
# A "SELECT 1" before each request's first query catches a connection the server dropped; off by
# default because a dropped connection already fails one request and is replaced for the next.
DATABASE_HEALTH_CHECKS = env_bool("DATABASE_HEALTH_CHECKS", False)
# Behind PgBouncer in transaction pooling mode each transaction may run on another server
# connection: nothing may outlive a transaction there (no server-side cursors, no prepared statements).
DATABASE_BEHIND_PGBOUNCER = env_bool("DATABASE_BEHIND_PGBOUNCER", False)
# Server-side parameters let PostgreSQL prepare the statements a process runs again and again.
DATABASE_SERVER_SIDE_BINDING = env_bool("DATABASE_SERVER_SIDE_BINDING", not DATABASE_BEHIND_PGBOUNCER)
REDIS_URL = env_str("REDIS_URL")

# HTTPS hardening. Cookies are Secure unless DEBUG (browsers drop Secure cookies on plain http);
# HSTS is opt-in because a wrong HSTS header locks browsers out for its whole max-age.
SECURE_COOKIES = env_bool("SECURE_COOKIES", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)

BUSINESS_NAME = env_str("BUSINESS_NAME", "Booking")
SUPPORT_EMAIL = env_str("SUPPORT_EMAIL", "support@example.com")
SUPPORT_PHONE = env_str("SUPPORT_PHONE", "")
BUSINESS_TIME_ZONE = env_str("BUSINESS_TIME_ZONE", "UTC")  # how admin shows and reads times

EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "bookings@example.com")
DEV_MAILBOX_DIR = env_str("DEV_MAILBOX_DIR", "")

STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", "")
STRIPE_PUBLISHABLE_KEY = env_str("STRIPE_PUBLISHABLE_KEY", "")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", "")
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "")  # set only for a local stand-in
STRIPE_JS_URL = env_str("STRIPE_JS_URL", "https://js.stripe.com/v3/")

GOOGLE_CLIENT_ID = env_str("GOOGLE_CLIENT_ID", "")
GOOGLE_CLIENT_SECRET = env_str("GOOGLE_CLIENT_SECRET", "")
GOOGLE_AUTH_URI = env_str("GOOGLE_AUTH_URI", "https://accounts.google.com/o/oauth2/auth")
GOOGLE_TOKEN_URI = env_str("GOOGLE_TOKEN_URI", "https://oauth2.googleapis.com/token")
GOOGLE_CALENDAR_API_ENDPOINT = env_str("GOOGLE_CALENDAR_API_ENDPOINT", "")

MICROSOFT_CLIENT_ID = env_str("MICROSOFT_CLIENT_ID", "")
MICROSOFT_CLIENT_SECRET = env_str("MICROSOFT_CLIENT_SECRET", "")
MICROSOFT_AUTHORITY = env_str("MICROSOFT_AUTHORITY", "https://login.microsoftonline.com/common")
MICROSOFT_GRAPH_BASE = env_str("MICROSOFT_GRAPH_BASE", "https://graph.microsoft.com/v1.0")
MICROSOFT_CA_BUNDLE = env_str("MICROSOFT_CA_BUNDLE", "")
CALENDAR_SYNC_SECONDS = env_int("CALENDAR_SYNC_SECONDS", 300)
FRONT_DESK_REFUND_LIMIT = env_str("FRONT_DESK_REFUND_LIMIT", "50.00")
LOGIN_FAILURES_ALLOWED = env_int("LOGIN_FAILURES_ALLOWED", 5)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900)

# Encrypts stored secrets (calendar tokens, ticket signing keys); derived from SECRET_KEY when empty.
FIELD_ENCRYPTION_KEY = env_str("FIELD_ENCRYPTION_KEY", "")

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
OUTBOX_SWEEP_SECONDS = env_int("OUTBOX_SWEEP_SECONDS", 5)
WORKER_HEARTBEAT_MAX_AGE = env_int("WORKER_HEARTBEAT_MAX_AGE", 60)

# Set by pytest-xdist in each parallel test process; the test settings isolate Redis per process.
PYTEST_XDIST_WORKER = env_str("PYTEST_XDIST_WORKER", "gw0")
