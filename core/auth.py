"""Staff sign-in with failed attempts throttled (admin and the door page).

After LOGIN_FAILURES_ALLOWED failed attempts for one user name from one address within
LOGIN_LOCKOUT_SECONDS, that pair is refused without checking the password until the period has
passed since the last failure; the form says so. Counters live in the shared cache (Redis), so every
web process sees them. A success clears the counter.

When Redis does not answer, the counters fall back to this process's memory instead of failing the
request: staff and door staff can still sign in during an outage, and guessing is still throttled,
per process (an attacker gets at most the allowance once per web process, for as long as the outage
lasts). Failing open would drop the throttle entirely; failing closed would lock every member of
staff out exactly when they are needed.
"""

import hashlib
import logging
import math
import time

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
_this_process = LocMemCache("login-failures-fallback", {"OPTIONS": {"MAX_ENTRIES": 10_000}})


def _counters(operation: str, *args):
    """The shared cache's answer, or this process's while Redis is unreachable (see the docstring)."""
    try:
        return getattr(cache, operation)(*args)
    except (RedisError, OSError) as error:
        log.warning("Sign-in throttle: Redis unreachable (%s); counting in this process.", error)
        return getattr(_this_process, operation)(*args)


def _key(username: str, address: str) -> str:
    digest = hashlib.sha256(f"{username.strip().lower()}|{address}".encode()).hexdigest()[:32]
    return f"login-failures:{digest}"


def client_address(request) -> str:
    return (request.META.get("REMOTE_ADDR") or "unknown") if request is not None else "unknown"


class ThrottledLoginMixin:
    def clean(self):
        username = self.data.get("username", "")
        key = _key(username, client_address(self.request))
        failures = _counters("get", key) or {"count": 0, "last": 0.0}
        wait = failures["last"] + settings.LOGIN_LOCKOUT_SECONDS - time.time()
        if failures["count"] >= settings.LOGIN_FAILURES_ALLOWED and wait > 0:
            minutes = max(1, math.ceil(wait / 60))
            raise forms.ValidationError(
                f"Too many failed sign-ins for this user from here. Try again in {minutes} minute"
                f"{'s' if minutes != 1 else ''}, or ask a manager to reset the password.",
                code="throttled",
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            failed = {"count": failures["count"] + 1, "last": time.time()}
            _counters("set", key, failed, settings.LOGIN_LOCKOUT_SECONDS)
            raise
        _counters("delete", key)
        return cleaned


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass
