import zoneinfo

from django.conf import settings
from django.utils import timezone


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
