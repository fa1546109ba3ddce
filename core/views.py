from pathlib import Path

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from core.health import health_report, health_verdicts
from core.mailbox import mailbox_get, mailbox_list


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Report database, Redis and worker heartbeat; 503 when any of them is down. Anonymous callers
    (load balancers, monitors, anyone) get the verdicts only; staff also get the details, whose error
    texts name sockets, hosts and versions."""
    report = health_report(now=timezone.now())
    shown = report if request.user.is_active and request.user.is_staff else health_verdicts(report)
    return JsonResponse(shown, status=200 if report["ok"] else 503)


def _mailbox_folder() -> Path:
    if not settings.DEV_MAILBOX_DIR:
        raise Http404("The demo mailbox is only there under `make run`.")
    return Path(settings.DEV_MAILBOX_DIR)


@staff_member_required
@require_safe
def dev_mailbox(request: HttpRequest) -> HttpResponse:
    """Every email the demo has sent, newest first (staff only): what customers would receive."""
    return render(request, "core/mailbox.html", {"messages_list": mailbox_list(folder=_mailbox_folder())})


@staff_member_required
@require_safe
def dev_mailbox_message(request: HttpRequest, name: str) -> HttpResponse:
    try:
        message = mailbox_get(folder=_mailbox_folder(), name=name)
    except FileNotFoundError:
        raise Http404("No such message") from None
    return render(request, "core/mailbox_message.html", {"message": message})


COMMON_ZONES = [
    "Europe/London",
    "Europe/Dublin",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Rome",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Australia/Adelaide",
    "UTC",
]


@require_http_methods(["GET", "HEAD", "POST"])
def time_zone_choose(request: HttpRequest) -> HttpResponse:
    """Pick the zone "your time" is shown in (detected by the browser until chosen here)."""
    import zoneinfo

    from django.utils.http import url_has_allowed_host_and_scheme

    next_url = request.POST.get("next") or request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    if request.method == "POST":
        chosen = request.POST.get("tz", "")
        if chosen in zoneinfo.available_timezones():
            response = HttpResponseRedirect(next_url)
            response.set_cookie("tz", chosen, max_age=365 * 24 * 3600, samesite="Lax")
            return response
    zones = sorted(zoneinfo.available_timezones() - set(COMMON_ZONES))
    return render(
        request,
        "core/time_zone.html",
        {"common": COMMON_ZONES, "zones": zones, "next": next_url, "current": request.COOKIES.get("tz", "")},
    )


RETRY_AFTER_SECONDS = 30


def _error_page(template: str, status: int, heading: str, text: str) -> HttpResponse:
    context = {
        "business_name": settings.BUSINESS_NAME,
        "support_email": settings.SUPPORT_EMAIL,
        "status": status,
        "heading": heading,
        "text": text,
    }
    return HttpResponse(render_to_string(template, context), status=status)


def service_unavailable_response() -> HttpResponse:
    """The page shown while the database does not answer: 503 with Retry-After, never a traceback."""
    response = _error_page(
        "503.html",
        503,
        "We'll be right back",
        "The booking system is not answering for a moment. Please try again in a minute.",
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: the site's own page, with the business's name (Django's default has no context)."""
    return _error_page(
        "500.html",
        500,
        "Something went wrong on our side",
        "We have been told about it. Please try again; if it keeps happening, write to us.",
    )
