"""The staff Reports page (`/staff/reports/`): figures, server-made SVG bar charts, and CSV downloads.

Managers only: a staff login holding `booking.view_reports`. The view translates the query string
into `ReportFilters`, makes one call per table to `staff.reports`, and renders a page in the admin's
look, or, with `?format=csv&table=<name>`, that one table as a CSV attachment.

The charts are drawn by `staff.report_charts`, the tables (on the page and as CSV) built by
`staff.report_tables`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from booking.models import Booking
from inventory.models import Location, Offering
from staff import reports
from staff.report_charts import BarChart, bar_chart, period_short_label
from staff.report_tables import (
    TABLES,
    Table,
    bookings_table,
    occupancy_tables,
    resources_table,
    revenue_table,
    tables_csv,
    waitlist_tables,
)
from staff.reports import ReportFilters

PERMISSION = "booking.view_reports"


# --- the filter form ----------------------------------------------------------------------------


class ReportFilterForm(forms.Form):
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (included)", widget=forms.DateInput(attrs={"type": "date"}))
    group = forms.ChoiceField(label="Group by", choices=[("day", "Day"), ("week", "Week")], initial="day")
    offering = forms.ModelChoiceField(
        queryset=Offering.objects.order_by("name", "pk"), required=False, empty_label="All offerings"
    )
    location = forms.ModelChoiceField(
        queryset=Location.objects.order_by("name", "pk"), required=False, empty_label="All locations"
    )

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                raise forms.ValidationError("The end date must be on or after the start date.")
            if (end - start).days + 1 > reports.MAX_DAYS:
                raise forms.ValidationError(f"Choose at most {reports.MAX_DAYS} days.")
        return data


def _filters_from(
    request: HttpRequest, *, default: ReportFilters
) -> tuple[ReportFilterForm, ReportFilters | None]:
    """The form bound to the query string (defaults filled in) and its filters, or None if invalid."""
    params = {
        "start": default.start_date.isoformat(),
        "end": default.end_date.isoformat(),
        "group": default.group,
        **{k: v for k, v in request.GET.items() if k in ReportFilterForm.base_fields and v != ""},
    }
    form = ReportFilterForm(params)
    if not form.is_valid():
        return form, None
    data = form.cleaned_data
    return form, ReportFilters(
        start_date=data["start"],
        end_date=data["end"],
        time_zone=default.time_zone,
        group=data["group"],
        offering_id=data["offering"].pk if data["offering"] else None,
        location_id=data["location"].pk if data["location"] else None,
    )


# --- the page -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    ident: str
    heading: str
    explanation: str
    charts: list[BarChart]
    tables: list[Table]


def _sections(filters: ReportFilters) -> list[Section]:
    """Every table of the page: one call into staff.reports each."""
    group, zone = filters.group, filters.zone
    labels = [period_short_label(p, group) for p in filters.periods]
    span = f"{filters.start_date:%-d %b %Y} to {filters.end_date:%-d %b %Y}, per {group}"

    bookings = reports.report_bookings(filters=filters)
    revenue = reports.report_revenue(filters=filters)
    occupancy = reports.report_occupancy(filters=filters)
    resources = reports.report_resources(filters=filters)
    waitlist = reports.report_waitlist(filters=filters)

    occupancy_periods, occupancy_sessions = occupancy_tables(occupancy, group, zone)
    waitlist_periods, waitlist_sessions = waitlist_tables(waitlist, group, zone)
    return [
        Section(
            ident="bookings",
            heading="Bookings",
            explanation=(
                "Made and confirmed count bookings by the day they were made (abandoned checkouts "
                "count as made, not confirmed). Starting, cancelled and no-shows count bookings that "
                "were confirmed, by the day they start. Cancellation rate: cancelled of starting. "
                "No-show rate: no-shows of starting bookings that were not cancelled."
            ),
            charts=[
                bar_chart(
                    ident="chart-bookings-made",
                    title="Bookings made and confirmed",
                    description=f"Bookings made and confirmed by booking date, {span}.",
                    labels=labels,
                    series={
                        "Made": [r.made for r in bookings.rows],
                        "Confirmed": [r.confirmed for r in bookings.rows],
                    },
                ),
                bar_chart(
                    ident="chart-bookings-start",
                    title="Confirmed bookings starting, cancelled and no-shows",
                    description=f"Confirmed bookings by start date, with cancellations and no-shows, {span}.",
                    labels=labels,
                    series={
                        "Starting": [r.starting for r in bookings.rows],
                        "Cancelled": [r.cancelled for r in bookings.rows],
                        "No-shows": [r.no_shows for r in bookings.rows],
                    },
                ),
            ],
            tables=[bookings_table(bookings, group)],
        ),
        Section(
            ident="revenue",
            heading="Revenue",
            explanation=(
                "Money of bookings by the day they were made, as payments reported it: collected "
                "(paid), refunded, net (collected − refunded), and outstanding: what confirmed, "
                "completed and no-show bookings still owe (total − paid, never below zero)."
            ),
            charts=[
                bar_chart(
                    ident=f"chart-revenue-{currency.lower()}",
                    title=f"Collected and refunded, {currency}",
                    description=f"Money collected and refunded in {currency} by booking date, {span}.",
                    labels=labels,
                    series={
                        "Collected": [r.collected for r in revenue.rows_in(currency)],
                        "Refunded": [r.refunded for r in revenue.rows_in(currency)],
                    },
                )
                for currency in revenue.currencies
            ],
            tables=[revenue_table(revenue, group)],
        ),
        Section(
            ident="occupancy",
            heading="Session occupancy",
            explanation=(
                "Scheduled classes and event sessions starting in the range: places sold of the "
                "session's total capacity (held places, in checkouts, are shown but not counted)."
            ),
            charts=[
                bar_chart(
                    ident="chart-occupancy",
                    title="Session occupancy",
                    description=f"Places sold in % of capacity, by session start, {span}.",
                    labels=labels,
                    series={"Occupancy": [r.occupancy for r in occupancy.periods]},
                    unit="%",
                )
            ],
            tables=[occupancy_periods, occupancy_sessions],
        ),
        Section(
            ident="resources",
            heading="Resource time",
            explanation=(
                "Appointment hours of confirmed, completed and no-show bookings starting in the range, "
                "buffers excluded, against the working hours in the schedule (weekly hours and date "
                "overrides, times the number of units). Blackouts and outside busy time are not "
                "subtracted; classes a resource teaches are not counted."
            ),
            charts=[],
            tables=[resources_table(resources)],
        ),
        Section(
            ident="waitlist",
            heading="Waitlist demand",
            explanation=(
                "Waitlist entries made in the range (by the day people joined): requests (one per "
                "person) and the places they asked for, with how many ended up booked."
            ),
            charts=[
                bar_chart(
                    ident="chart-waitlist",
                    title="Waitlist demand",
                    description=f"Waitlist requests and places asked by date joined, {span}.",
                    labels=labels,
                    series={
                        "Requests": [p.requests for p in waitlist.periods],
                        "Places asked": [p.places for p in waitlist.periods],
                    },
                )
            ],
            tables=[waitlist_periods, waitlist_sessions],
        ),
    ]


def _today(time_zone: str) -> date:
    return timezone.now().astimezone(ZoneInfo(time_zone)).date()


@staff_member_required
@never_cache
@require_safe
def reports_page(request: HttpRequest) -> HttpResponse:
    """How the business is doing, for a date range; `?format=csv&table=<name>` downloads one table."""
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied("You are not allowed to see the reports.")
    time_zone = settings.BUSINESS_TIME_ZONE
    default = reports.report_filters_default(today=_today(time_zone), time_zone=time_zone)
    form, filters = _filters_from(request, default=default)

    if request.GET.get("format") == "csv":
        name = request.GET.get("table", "")
        if name not in TABLES:
            return HttpResponseBadRequest(f"Unknown table; choose one of {', '.join(TABLES)}.")
        if filters is None:
            return HttpResponseBadRequest("Invalid filters: " + "; ".join(form.errors.get("__all__", [])))
        return tables_csv(TABLES[name](filters), filters, name)

    query = request.GET.copy()
    query.pop("format", None)
    query.pop("table", None)
    return render(
        request,
        "staff/reports.html",
        {
            **admin.site.each_context(request),
            "opts": Booking._meta,
            "title": "Reports",
            "form": form,
            "filters": filters,
            "sections": _sections(filters) if filters else [],
            "query": query.urlencode(),
            "time_zone": time_zone,
            "days": (filters.end_date - filters.start_date + timedelta(days=1)).days if filters else 0,
        },
    )
