"""Settings for every environment.

Composition: values come from `config.env` (the only reader of the process environment), so this
module is a plain list of assignments with no conditionals on where it runs beyond what the
environment says. `config.settings.test` imports this module and adjusts it for pytest. No code that
reads the database or the network belongs here.
"""

from decimal import Decimal
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config import env

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = env.DEBUG
# Without DEBUG an unset SECRET_KEY stays empty, and Django refuses to sign anything with it
# ("The SECRET_KEY setting must not be empty"); the insecure key exists only for DEBUG.
SECRET_KEY = env.SECRET_KEY or ("insecure-dev-key-only-for-debug" if DEBUG else "")

ALLOWED_HOSTS = env.ALLOWED_HOSTS or (["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.CSRF_TRUSTED_ORIGINS
SITE_URL = env.SITE_URL.rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "template_partials",
    "core",
    "inventory",
    "booking",
    "payments",
    "ticketing",
    "calendarsync",
    "staff",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "core.middleware.BusinessTimeZoneMiddleware",
    "core.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.business",
            ],
        },
    },
]

if not env.DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. `make run` and `make test` start a project-local PostgreSQL and set it "
        "for you; in production point it at your server, e.g. postgresql://user:pass@host:5432/booking."
    )
DATABASES = {"default": dj_database_url.parse(env.DATABASE_URL, conn_max_age=env.DATABASE_CONN_MAX_AGE)}
DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"
DATABASES["default"].setdefault("OPTIONS", {})
if env.DATABASE_POOL_MAX:
    # psycopg's pool replaces persistent connections; Django refuses both at once.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": env.DATABASE_POOL_MAX,
        # A request waits this long for a free connection, then gets the 503 page with Retry-After
        # (core.middleware.DatabaseUnavailableMiddleware), never a 500.
        "timeout": 5,
    }
# With the pool this is its check as it hands a connection out (one round trip): after PostgreSQL
# restarts, no request is given one of the dead connections still sitting in the pool.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.DATABASE_HEALTH_CHECKS or bool(env.DATABASE_POOL_MAX)
DATABASES["default"]["OPTIONS"]["server_side_binding"] = env.DATABASE_SERVER_SIDE_BINDING
# A server-side cursor (QuerySet.iterator()) lives across statements on one server connection.
# Locks are row locks and `lock_timeout` is set per transaction (inventory/locks.py), and PgBouncer
# carries the session's TimeZone itself, so nothing else needs a session of its own.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.DATABASE_BEHIND_PGBOUNCER
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if not env.REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL is not set. `make run` and `make test` start an embedded Redis and set it for you; "
        "in production point it at your server, e.g. redis://host:6379/0."
    )
REDIS_URL = env.REDIS_URL
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "booking",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"  # storage and logs; pages show each venue's own zone
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / ".local" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Content-Security-Policy (core.middleware.ContentSecurityPolicyMiddleware) ------------------------
# The middleware adds Stripe's origins (STRIPE_JS_URL, STRIPE_API_BASE) for the card form: its script,
# the frames it draws the fields and 3-D Secure in, and its API.
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],  # no inline script, no eval: htmx runs with allowEval off
    "style-src": ["'self'"],  # no <style> elements: htmx's indicator styles are in site.css
    # Style attributes carry server-computed geometry (the staff schedule's blocks) and the emails
    # previewed in the demo mailbox; an attribute cannot run script.
    "style-src-attr": ["'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "frame-src": ["'self'", "https://hooks.stripe.com"],
    "frame-ancestors": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
}

# --- HTTPS hardening -----------------------------------------------------------------------------
SESSION_COOKIE_SECURE = env.SECURE_COOKIES
CSRF_COOKIE_SECURE = env.SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = env.SECURE_SSL_REDIRECT
SECURE_HSTS_SECONDS = env.SECURE_HSTS_SECONDS
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env.SECURE_HSTS_PRELOAD
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain http
if env.BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Email ---------------------------------------------------------------------------------------
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env.EMAIL_HOST
EMAIL_PORT = env.EMAIL_PORT
EMAIL_HOST_USER = env.EMAIL_HOST_USER
EMAIL_HOST_PASSWORD = env.EMAIL_HOST_PASSWORD
EMAIL_USE_TLS = env.EMAIL_USE_TLS
EMAIL_USE_SSL = env.EMAIL_USE_SSL
EMAIL_TIMEOUT = env.EMAIL_TIMEOUT
DEFAULT_FROM_EMAIL = env.DEFAULT_FROM_EMAIL
SERVER_EMAIL = env.DEFAULT_FROM_EMAIL
DEV_MAILBOX_DIR = env.DEV_MAILBOX_DIR  # set by `make run`: the demo mailbox staff can read

# --- The business --------------------------------------------------------------------------------
BUSINESS_NAME = env.BUSINESS_NAME
SUPPORT_EMAIL = env.SUPPORT_EMAIL
SUPPORT_PHONE = env.SUPPORT_PHONE
BUSINESS_TIME_ZONE = env.BUSINESS_TIME_ZONE

# --- Integrations (each is off until its keys are set) -------------------------------------------
STRIPE_SECRET_KEY = env.STRIPE_SECRET_KEY
STRIPE_PUBLISHABLE_KEY = env.STRIPE_PUBLISHABLE_KEY
STRIPE_WEBHOOK_SECRET = env.STRIPE_WEBHOOK_SECRET
STRIPE_API_BASE = env.STRIPE_API_BASE
STRIPE_JS_URL = env.STRIPE_JS_URL
STRIPE_ENABLED = bool(STRIPE_SECRET_KEY)
# Where a customer goes after holding places that must be paid for (the payments app's checkout).
BOOKING_CHECKOUT_URL_NAME = "payments:checkout"

GOOGLE_CLIENT_ID = env.GOOGLE_CLIENT_ID
GOOGLE_CLIENT_SECRET = env.GOOGLE_CLIENT_SECRET
GOOGLE_AUTH_URI = env.GOOGLE_AUTH_URI
GOOGLE_TOKEN_URI = env.GOOGLE_TOKEN_URI
GOOGLE_CALENDAR_API_ENDPOINT = env.GOOGLE_CALENDAR_API_ENDPOINT
GOOGLE_ENABLED = bool(GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET)

MICROSOFT_CLIENT_ID = env.MICROSOFT_CLIENT_ID
MICROSOFT_CLIENT_SECRET = env.MICROSOFT_CLIENT_SECRET
MICROSOFT_AUTHORITY = env.MICROSOFT_AUTHORITY
MICROSOFT_GRAPH_BASE = env.MICROSOFT_GRAPH_BASE
MICROSOFT_CA_BUNDLE = env.MICROSOFT_CA_BUNDLE
MICROSOFT_ENABLED = bool(MICROSOFT_CLIENT_ID and MICROSOFT_CLIENT_SECRET)

FIELD_ENCRYPTION_KEY = env.FIELD_ENCRYPTION_KEY

# --- Celery --------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.celery_broker_url(REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Short socket timeouts: a request publishing after commit must not hang when Redis is away; the
# outbox sweeper delivers whatever could not be published.
# One connection attempt, no retries (`max_retries` applies to publishing only: the worker and beat
# pass their own retry policy), and after a failure the process leaves the broker alone for a while
# (core/broker.py).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    "max_retries": 0,
    "visibility_timeout": 3600,
}
BROKER_RETRY_AFTER_SECONDS = 10
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Tasks are idempotent (the outbox locks and marks each message), so a task cut off by a lost broker
# connection is simply redelivered.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
OUTBOX_SWEEP_SECONDS = env.OUTBOX_SWEEP_SECONDS
WORKER_HEARTBEAT_MAX_AGE = env.WORKER_HEARTBEAT_MAX_AGE
# The one periodic schedule. Later features add their entries here, so every timer is in one place.
CALENDAR_SYNC_SECONDS = env.CALENDAR_SYNC_SECONDS
# Front-desk staff refund up to this much per refund; managers (booking.refund_any_amount) any amount.
FRONT_DESK_REFUND_LIMIT = Decimal(env.FRONT_DESK_REFUND_LIMIT)
# Failed staff sign-ins: this many per user name and address, then a pause (core/auth.py).
LOGIN_FAILURES_ALLOWED = env.LOGIN_FAILURES_ALLOWED
LOGIN_LOCKOUT_SECONDS = env.LOGIN_LOCKOUT_SECONDS

CELERY_BEAT_SCHEDULE = {
    "outbox-sweep": {
        "task": "core.tasks.outbox_sweep",
        "schedule": float(OUTBOX_SWEEP_SECONDS),
        "options": {"expires": OUTBOX_SWEEP_SECONDS * 2},
    },
    "worker-heartbeat": {"task": "core.tasks.worker_heartbeat", "schedule": 10.0, "options": {"expires": 20}},
    "holds-sweep": {"task": "booking.tasks.holds_sweep", "schedule": 30.0, "options": {"expires": 60}},
    "capacity-reconcile": {"task": "booking.tasks.capacity_reconcile", "schedule": 3600.0},
    "payments-reconcile": {"task": "payments.tasks.reconcile_recent", "schedule": 900.0},
    "balance-reminders": {"task": "payments.tasks.balance_reminders", "schedule": 3600.0},
    "booking-reminders": {"task": "booking.tasks.reminders", "schedule": 300.0, "options": {"expires": 300}},
    # The safety net under push notifications (and the only sync for CalDAV, which has no push).
    "calendar-sync": {
        "task": "calendarsync.tasks.calendar_sync_all",
        "schedule": float(CALENDAR_SYNC_SECONDS),
        "options": {"expires": CALENDAR_SYNC_SECONDS},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.LOG_LEVEL},
    # 4xx answers (sold out, not found) are normal traffic for a booking site, not warnings.
    "loggers": {"django.db.backends": {"level": "INFO"}, "django.request": {"level": "ERROR"}},
}
