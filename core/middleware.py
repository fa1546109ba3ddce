import logging
import zoneinfo
from urllib.parse import urlsplit

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from core.views import service_unavailable_response

log = logging.getLogger(__name__)


class BusinessTimeZoneMiddleware:
    """Show and read datetimes in the business's own zone (admin forms and lists).

    Storage stays UTC. Customer pages do not rely on this: they format every time explicitly in the
    venue's zone, with the customer's alongside where it differs.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.zone = zoneinfo.ZoneInfo(settings.BUSINESS_TIME_ZONE)

    def __call__(self, request):
        with timezone.override(self.zone):
            return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """A database that does not answer (down, restarting, out of connections) is a "we'll be right
    back" page with 503 and Retry-After, in `make run` too, instead of a traceback or Django's debug
    page. Last in MIDDLEWARE, so it sees a view's exception first."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)):
            log.error("Database unavailable for %s %s: %s", request.method, request.path, exception)
            return service_unavailable_response()
        return None


class ContentSecurityPolicyMiddleware:
    """Every response carries the site's Content-Security-Policy (`settings.CONTENT_SECURITY_POLICY`).

    Scripts and style sheets come only from our own origin (and Stripe's, for the card form): no page
    has an inline script, an event-handler attribute or a <style> element, so an injected one does not
    run. A view that needs a different policy sets its own header; this one is then left alone.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", content_security_policy())
        return response


def content_security_policy() -> str:
    """The policy from settings, with Stripe's script and API origins where the card form needs them
    (https://docs.stripe.com/security/guide#content-security-policy; the stand-in's under make run)."""
    stripe_js = _origin(settings.STRIPE_JS_URL)
    stripe_api = _origin(settings.STRIPE_API_BASE or "https://api.stripe.com")
    extra = {"script-src": [stripe_js], "frame-src": [stripe_js], "connect-src": [stripe_api]}
    return "; ".join(
        " ".join([directive, *sources, *extra.get(directive, [])])
        for directive, sources in settings.CONTENT_SECURITY_POLICY.items()
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
