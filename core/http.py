from django.http import HttpRequest, HttpResponseRedirect
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """A request as seen after django-htmx's middleware: `request.htmx` is always present."""

    htmx: HtmxDetails


class SeeOther(HttpResponseRedirect):
    """303: after a POST, the browser fetches the next page with GET (a reload never re-posts)."""

    status_code = 303
