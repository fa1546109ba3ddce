"""Settings for pytest: base settings plus speed and isolation, never a different database or broker.

Tests run against the same PostgreSQL and Redis servers as the app (DATABASE_URL / REDIS_URL, which
`make test` provides). Parallel workers (pytest-xdist) each get their own Redis logical database so a
Celery worker thread in one test process never takes another process's tasks.
"""

from config import env
from config.settings.base import *  # noqa: F403
from config.settings.base import REDIS_URL

SECRET_KEY = "test-only-secret-key-not-for-production"  # noqa: S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; never in production

_xdist_worker = env.PYTEST_XDIST_WORKER
REDIS_DB = 1 + int(_xdist_worker.removeprefix("gw") or 0) % 15
REDIS_URL = env.redis_url_with_db(REDIS_URL, REDIS_DB)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"test-{_xdist_worker}",
    }
}
CELERY_BROKER_URL = env.celery_broker_url(REDIS_URL)
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405 - worker threads must not keep test DBs open
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
# Serve static files from the app folders as `make run` does; there is no collectstatic in tests.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
