import logging
import zoneinfo

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
