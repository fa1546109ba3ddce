from pathlib import Path

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.health import health_report
from core.mailbox import mailbox_get, mailbox_list


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Report database, Redis and worker heartbeat; 503 when any of them is down."""
    report = health_report(now=timezone.now())
    return JsonResponse(report, status=200 if report["ok"] else 503)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "core/home.html")


def _mailbox_folder() -> Path:
    if not settings.DEV_MAILBOX_DIR:
        raise Http404("The demo mailbox is only there under `make run`.")
    return Path(settings.DEV_MAILBOX_DIR)


@staff_member_required
@require_GET
def dev_mailbox(request: HttpRequest) -> HttpResponse:
    """Every email the demo has sent, newest first (staff only): what customers would receive."""
    return render(request, "core/mailbox.html", {"messages_list": mailbox_list(folder=_mailbox_folder())})


@staff_member_required
@require_GET
def dev_mailbox_message(request: HttpRequest, name: str) -> HttpResponse:
    try:
        message = mailbox_get(folder=_mailbox_folder(), name=name)
    except FileNotFoundError:
        raise Http404("No such message") from None
    return render(request, "core/mailbox_message.html", {"message": message})
