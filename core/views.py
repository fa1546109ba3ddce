from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.health import health_report


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Report database, Redis and worker heartbeat; 503 when any of them is down."""
    report = health_report(now=timezone.now())
    return JsonResponse(report, status=200 if report["ok"] else 503)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "core/home.html")
