"""Connecting calendars (OAuth round trips for staff) and the providers' push notifications."""

import json
import logging
import secrets

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from calendarsync.models import CalendarConnection
from calendarsync.providers.base import ProviderError
from calendarsync.services import CalendarError, connection_grant, push_received
from core.broker import task_publish

log = logging.getLogger(__name__)
SESSION_KEY = "calendarsync.flow"


def _admin_page(connection: CalendarConnection) -> str:
    return reverse("admin:calendarsync_calendarconnection_change", args=[connection.pk])


def _provider_module(provider: str):
    if provider == CalendarConnection.Provider.GOOGLE:
        from calendarsync.providers import google

        return google
    from calendarsync.providers import microsoft

    return microsoft


@staff_member_required
@require_safe
def connect(request: HttpRequest, pk: int) -> HttpResponse:
    """Send the staff member to Google or Microsoft to grant access (first time or reconnecting)."""
    if not request.user.has_perm("calendarsync.change_calendarconnection"):
        raise PermissionDenied
    connection = get_object_or_404(CalendarConnection, pk=pk)
    if connection.provider == CalendarConnection.Provider.CALDAV:
        messages.info(request, "CalDAV calendars are reconnected by saving a new password on this page.")
        return redirect(_admin_page(connection))
    redirect_uri = request.build_absolute_uri(reverse("calendarsync:oauth_callback"))
    state = secrets.token_urlsafe(24)
    module = _provider_module(connection.provider)
    if connection.provider == CalendarConnection.Provider.GOOGLE:
        flow = module.auth_flow_start(redirect_uri=redirect_uri, state=state)
    else:
        flow = module.auth_flow_start(redirect_uri=redirect_uri)
        state = flow.get("state", state)
    request.session[SESSION_KEY] = {"connection": connection.pk, "flow": flow, "state": state}
    return redirect(flow["auth_uri"])


@staff_member_required
@require_safe
def oauth_callback(request: HttpRequest) -> HttpResponse:
    """The provider sends the staff member back here with a code (or an error)."""
    pending = request.session.pop(SESSION_KEY, None)
    if not pending or request.GET.get("state") != pending["state"]:
        return HttpResponseBadRequest(
            "This sign-in does not belong to a calendar being connected; start again."
        )
    connection = get_object_or_404(CalendarConnection, pk=pending["connection"])
    module = _provider_module(connection.provider)
    try:
        credentials = module.auth_flow_finish(flow=pending["flow"], query=request.GET.dict())
        connection_grant(
            connection=connection, credentials=credentials, now=timezone.now(), acting_user=request.user
        )
    except (ProviderError, CalendarError) as error:
        messages.error(request, f"The calendar was not connected: {error}")
        return redirect(_admin_page(connection))
    messages.success(request, f"Connected {connection.resource.name}'s calendar; the first sync is running.")
    return redirect(_admin_page(connection))


@csrf_exempt
@require_POST
def push_google(request: HttpRequest) -> HttpResponse:
    """Google's events.watch notification: headers only. 'sync' opens a channel; anything else means
    the calendar changed, and a sync is queued (the notification itself says nothing of what)."""
    connection = push_received(
        provider="google",
        channel_id=request.headers.get("X-Goog-Channel-ID", ""),
        token=request.headers.get("X-Goog-Channel-Token", ""),
    )
    if connection is None:
        return HttpResponse(status=404)  # unknown or stale channel: Google stops sending to it
    if request.headers.get("X-Goog-Resource-State") != "sync":
        task_publish("calendarsync.tasks.calendar_sync", kwargs={"connection_id": connection.pk})
    return HttpResponse(status=200)


@csrf_exempt
@require_POST
def push_microsoft(request: HttpRequest) -> HttpResponse:
    """Graph change notifications; the validation handshake echoes the token as plain text."""
    if "validationToken" in request.GET:
        return HttpResponse(request.GET["validationToken"], content_type="text/plain", status=200)
    try:
        notes = json.loads(request.body or b"{}").get("value", [])
    except (ValueError, AttributeError):
        return HttpResponseBadRequest("Expected a JSON body with 'value'.")
    queued = set()
    for note in notes if isinstance(notes, list) else []:
        connection = push_received(
            provider="microsoft",
            channel_id=str(note.get("subscriptionId", "")),
            token=str(note.get("clientState", "")),
        )
        if connection is not None and connection.pk not in queued:
            queued.add(connection.pk)
            task_publish("calendarsync.tasks.calendar_sync", kwargs={"connection_id": connection.pk})
    return HttpResponse(status=202)
