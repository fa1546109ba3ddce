"""The staff day schedule (`/staff/schedule/?location=<id>&date=YYYY-MM-DD`).

Staff holding `booking.view_booking` see one location's day: resources down the side, the hours
across, bookings, sessions, busy time and blackouts as blocks that link to their admin pages. The view
translates the query string, makes one call to `staff.schedule.day_schedule`, and renders a page in
the admin's look; everything is server-rendered HTML and CSS.
"""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from booking.models import Booking
from inventory.models import Location
from staff import schedule

PERMISSION = "booking.view_booking"


class ScheduleForm(forms.Form):
    location = forms.TypedChoiceField(label="Location", coerce=int)
    date = forms.DateField(label="Date", widget=forms.DateInput(attrs={"type": "date"}))
    whole_day = forms.BooleanField(label="Whole day (00–24)", label_suffix="", required=False)

    def __init__(self, *args, locations: list[Location], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["location"].choices = [(loc.pk, f"{loc.name} ({loc.time_zone})") for loc in locations]


def _query(location: Location, day: date, whole_day: bool) -> str:
    params = {"location": location.pk, "date": day.isoformat()}
    if whole_day:
        params["whole_day"] = "on"
    return f"{reverse('staff:schedule')}?{urlencode(params)}"


@staff_member_required
@never_cache
@require_safe
def day_schedule(request: HttpRequest) -> HttpResponse:
    """One location's day, in its own time zone; by default the first location, today."""
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied("You are not allowed to see the schedule.")
    now = timezone.now()
    locations = schedule.schedule_locations()
    context = {
        **admin.site.each_context(request),
        "opts": Booking._meta,
        "title": "Day schedule",
        "is_nav_sidebar_enabled": False,  # the hours need the width
        "schedule": None,
        "form": None,
    }
    if not locations:
        return render(request, "staff/schedule.html", context)

    by_pk = {loc.pk: loc for loc in locations}
    wanted = request.GET.get("location", "")
    # The default date is today where the chosen location is, so it needs the location first.
    chosen = by_pk.get(int(wanted)) if wanted.isdigit() else None
    chosen = chosen or locations[0]
    data = {
        "location": wanted or chosen.pk,
        "date": request.GET.get("date") or now.astimezone(chosen.tz).date().isoformat(),
        "whole_day": request.GET.get("whole_day", ""),
    }
    form = ScheduleForm(data, locations=locations)
    context["form"] = form
    if not form.is_valid():
        return render(request, "staff/schedule.html", context, status=400)

    location = by_pk[form.cleaned_data["location"]]
    day = form.cleaned_data["date"]
    whole_day = form.cleaned_data["whole_day"]
    context.update(
        schedule=schedule.day_schedule(location=location, day=day, now=now, whole_day=whole_day),
        prev_url=_query(location, day - timedelta(days=1), whole_day),
        next_url=_query(location, day + timedelta(days=1), whole_day),
        today_url=_query(location, now.astimezone(location.tz).date(), whole_day),
        is_today=day == now.astimezone(location.tz).date(),
    )
    return render(request, "staff/schedule.html", context)
