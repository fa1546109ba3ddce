"""The door: the scanner page (a PWA) and the JSON API it syncs with.

The page needs a signed-in door-staff session once, to name the phone and get a device token;
after that every API call carries `Authorization: Bearer <token>`, so a phone that slept through
the session's expiry (or was offline for an hour) still syncs, and a lost phone is switched off
in the admin by revoking its device.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from core.errors import ApplicationError
from inventory.locks import CapacityBusy
from ticketing.models import CheckInList, Scan
from ticketing.selectors import (
    checkin_conflicts,
    checkin_counts,
    checkin_list_summary,
    checkin_lists_for_scans,
    checkin_manifest,
    door_lists,
    ticket_door_fields,
)
from ticketing.services import (
    ScanOutcome,
    ScanReport,
    door_device_authenticate,
    door_device_register,
    scans_record,
)

MAX_SYNC_BATCH = 5000
SERVICE_WORKER = Path(settings.BASE_DIR) / "static" / "ticketing" / "door-sw.js"


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def device_required(view):
    """The API's authentication: a device token (Bearer), checked against a live device and user."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        device = door_device_authenticate(token=token, now=timezone.now()) if token else None
        if device is None:
            return _error(
                "This phone is not signed in for the door (or was switched off). Sign in again.", 401
            )
        request.device = device
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapper)


def _json_body(request: HttpRequest) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("The request was not valid JSON.") from None
    if not isinstance(body, dict):
        raise ValueError("The request must be a JSON object.")
    return body


def _list_or_none(list_id: int) -> CheckInList | None:
    return CheckInList.objects.select_related("session__offering__location").filter(pk=list_id).first()


# --- the page -------------------------------------------------------------------------------------


@never_cache
@login_required(login_url="ticketing:door_login")
@require_safe
def door_page(request: HttpRequest) -> HttpResponse:
    """The scanner. Its shell is cached by the service worker, so it opens with no network at all."""
    if not request.user.has_perm("ticketing.scan_tickets"):
        return render(request, "ticketing/door_denied.html", status=403)
    return render(request, "ticketing/door.html", {"device_name_hint": "Main door"})


@require_safe
def door_service_worker(request: HttpRequest) -> HttpResponse:
    """Served from /door/ so its scope covers the page and the API; never cached by HTTP itself."""
    response = HttpResponse(SERVICE_WORKER.read_text(), content_type="application/javascript")
    response["Cache-Control"] = "no-cache"
    response["Service-Worker-Allowed"] = "/door/"
    return response


@require_safe
def door_web_manifest(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "name": f"{settings.BUSINESS_NAME} door",
            "short_name": "Door",
            "start_url": "/door/",
            "scope": "/door/",
            "display": "standalone",
            "orientation": "portrait",
            "background_color": "#0f1720",
            "theme_color": "#0f1720",
            "icons": [
                {"src": "/static/ticketing/door-icon-192.png", "sizes": "192x192", "type": "image/png"},
                {"src": "/static/ticketing/door-icon-512.png", "sizes": "512x512", "type": "image/png"},
            ],
        },
        content_type="application/manifest+json",
    )


# --- the API --------------------------------------------------------------------------------------


@require_POST
def api_device_register(request: HttpRequest) -> JsonResponse:
    """Name this phone and get its token (needs the signed-in session and its CSRF token)."""
    if not request.user.is_authenticated:
        return _error("Sign in first.", 401)
    try:
        body = _json_body(request)
        device, token = door_device_register(
            user=request.user, name=str(body.get("name", "")), now=timezone.now()
        )
    except ValueError as error:
        return _error(str(error), 400)
    except ApplicationError as error:
        return _error(error.message, 403)
    return JsonResponse(
        {
            "device": {"id": device.pk, "name": device.name, "user": request.user.get_username()},
            "token": token,
        },
        status=201,
    )


@device_required
@require_safe
def api_lists(request: HttpRequest) -> JsonResponse:
    now = timezone.now()
    lists = door_lists(now=now)
    return JsonResponse(
        {
            "server_time": now.isoformat(),
            "device": {
                "id": request.device.pk,
                "name": request.device.name,
                "user": request.device.user.get_username(),
            },
            "lists": [
                {**checkin_list_summary(checkin_list=c), "counts": checkin_counts(checkin_list=c)}
                for c in lists
            ],
        }
    )


@device_required
@require_safe
def api_manifest(request: HttpRequest, list_id: int) -> JsonResponse:
    """Everything the phone needs to judge tickets alone; `modified_since` for only what changed."""
    clist = _list_or_none(list_id)
    if clist is None:
        return _error("No such check-in list.", 404)
    since_text = request.GET.get("modified_since", "")
    since = parse_datetime(since_text) if since_text else None
    if since_text and (since is None or since.tzinfo is None):
        return _error("modified_since must be an ISO 8601 time with its offset.", 400)
    return JsonResponse(checkin_manifest(checkin_list=clist, modified_since=since, now=timezone.now()))


def _report(raw: dict, *, now: datetime, offline: bool) -> ScanReport:
    """One scan from the JSON body; raises ValueError with a message the phone can show."""
    try:
        scan_id = uuid.UUID(str(raw["id"]))
    except (KeyError, ValueError):
        raise ValueError("Each scan needs an id (a UUID made by the phone).") from None
    text = raw.get("raw")
    if not isinstance(text, str) or not text.strip() or len(text) > 300:
        raise ValueError("Each scan needs the scanned or typed code (up to 300 characters).")
    direction = raw.get("direction", Scan.Direction.ENTRY)
    if direction not in Scan.Direction.values:
        raise ValueError("direction is entry or exit.")
    scanned_at = now
    if offline:
        scanned_at = parse_datetime(str(raw.get("scanned_at", "")))
        if scanned_at is None or scanned_at.tzinfo is None:
            raise ValueError("Each offline scan needs scanned_at, an ISO 8601 time with its offset.")
    shown = str(raw.get("shown_result", ""))
    return ScanReport(
        id=scan_id,
        raw=text,
        scanned_at=scanned_at,
        direction=direction,
        door=str(raw.get("door", ""))[:80],
        shown_result=shown if shown in Scan.Result.values else "",
        offline=offline,
        override=bool(raw.get("override", False)),
    )


def _outcome_json(outcome: ScanOutcome, clist: CheckInList) -> dict:
    scan, ticket = outcome.scan, outcome.ticket
    data: dict = {
        "id": str(scan.pk),
        "result": scan.result,
        "result_text": scan.get_result_display(),
        "conflict": scan.conflict,
        "scanned_at": scan.scanned_at.isoformat(),
        "ticket": None,
        "first_entry": None,
        "wrong_session": None,
    }
    if ticket is not None:
        data["ticket"] = ticket_door_fields(ticket)
        if scan.result == Scan.Result.WRONG_SESSION:
            data["wrong_session"] = {
                "offering": ticket.session.offering.name,
                "starts_at": ticket.session.starts_at.isoformat(),
            }
    first = outcome.first_entry
    if (
        first is not None
        and first.pk != scan.pk
        and scan.result in (Scan.Result.ALREADY_IN, Scan.Result.VALID)
    ):
        data["first_entry"] = {"at": first.scanned_at.isoformat(), "door": first.door}
    return data


@device_required
@require_POST
def api_scan(request: HttpRequest, list_id: int) -> JsonResponse:
    """One scan, online: the answer the door shows, and the list's counters."""
    clist = checkin_lists_for_scans(list_ids=[list_id]).get(list_id)
    if clist is None:
        return _error("No such check-in list.", 404)
    now = timezone.now()
    try:
        report = _report(_json_body(request), now=now, offline=False)
        outcome = scans_record(checkin_list=clist, reports=[report], device=request.device, now=now)[0]
    except ValueError as error:
        return _error(str(error), 400)
    except CapacityBusy as error:
        return _error(error.message, 503)
    return JsonResponse({**_outcome_json(outcome, clist), "counts": checkin_counts(checkin_list=clist)})


@device_required
@require_POST
def api_sync(request: HttpRequest) -> JsonResponse:
    """Scans made offline, uploaded together; sending the same batch again changes nothing."""
    now = timezone.now()
    try:
        body = _json_body(request)
        raw_scans = body.get("scans")
        if not isinstance(raw_scans, list):
            raise ValueError("scans must be a list.")
        if len(raw_scans) > MAX_SYNC_BATCH:
            raise ValueError(f"Send at most {MAX_SYNC_BATCH} scans at a time.")
        by_list: dict[int, list[ScanReport]] = {}
        for raw in raw_scans:
            if not isinstance(raw, dict):
                raise ValueError("Each scan must be a JSON object.")
            list_id = raw.get("list_id")
            if not isinstance(list_id, int):
                raise ValueError("Each scan needs the list_id it was scanned for.")
            by_list.setdefault(list_id, []).append(_report(raw, now=now, offline=True))
        lists = checkin_lists_for_scans(list_ids=list(by_list))
        missing = set(by_list) - set(lists)
        if missing:
            raise ValueError(f"No such check-in list: {', '.join(map(str, sorted(missing)))}.")
    except ValueError as error:
        return _error(str(error), 400)
    results = []
    try:
        for list_id, reports in by_list.items():
            outcomes = scans_record(
                checkin_list=lists[list_id], reports=reports, device=request.device, now=now
            )
            results += [_outcome_json(o, lists[list_id]) for o in outcomes]
    except CapacityBusy as error:
        return _error(error.message, 503)
    return JsonResponse({"server_time": now.isoformat(), "results": results})


@device_required
@require_safe
def api_status(request: HttpRequest, list_id: int) -> JsonResponse:
    """Counters and the scans flagged as conflicts, for the staff at the door."""
    clist = checkin_lists_for_scans(list_ids=[list_id]).get(list_id)
    if clist is None:
        return _error("No such check-in list.", 404)
    return JsonResponse(
        {
            "counts": checkin_counts(checkin_list=clist),
            "conflicts": [
                {
                    "id": str(scan.pk),
                    "code": scan.ticket.code if scan.ticket else "",
                    "name": scan.ticket.holder_name if scan.ticket else "",
                    "at": scan.scanned_at.isoformat(),
                    "door": scan.door,
                    "first_at": scan.conflict_with.scanned_at.isoformat() if scan.conflict_with else None,
                    "first_door": scan.conflict_with.door if scan.conflict_with else "",
                }
                for scan in checkin_conflicts(checkin_list=clist)
            ],
        }
    )
