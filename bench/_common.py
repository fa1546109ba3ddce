"""What every benchmark needs: a scratch database of its own and Django set up against it."""

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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


def setup_django(database: str) -> dict[str, str]:
    env = scratch_environment(database)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.base"
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "x" * 40)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]
