"""The staff Reports page (`/staff/reports/`): figures, server-made SVG bar charts, and CSV downloads.

Managers only: a staff login holding `booking.view_reports`. The view translates the query string
into `ReportFilters`, makes one call per table to `staff.reports`, and renders a page in the admin's
look, or, with `?format=csv&table=<name>`, that one table as a CSV attachment.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
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
from core.times import venue_time
from inventory.models import Location, Offering
from staff import reports
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


# --- charts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int
    title: str  # "<period>: <value> <series name>", shown on hover and read by screen readers


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class BarChart:
    """An SVG bar chart laid out in Python; the template only draws it. Coordinates in SVG units."""

    empty: bool  # nothing but zeros: the page says so instead of drawing a flat line
    ident: str
    title: str
    description: str
    series: list[str]
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    width: int
    height: int
    left: int
    bottom: float  # y of the x axis


WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 220, 48, 8, 10, 28


def _nice_step(value: float) -> float:
    """A readable gridline step (1, 2, 2.5 or 5 × 10ⁿ; whole below 10) so 4 steps reach *value*."""
    quarter = max(value / 4, 1e-9)
    power = 10 ** math.floor(math.log10(quarter))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= quarter and (step * power >= 10 or float(step * power).is_integer()):
            return step * power
    return 10 * power  # pragma: no cover


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def bar_chart(
    *,
    ident: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float | int | Decimal | None]],
    unit: str = "",
) -> BarChart:
    """Lay out grouped bars: one group per label, one bar per series, on a shared linear y axis."""
    names = list(series)
    values = [[float(v or 0) for v in series[name]] for name in names]
    highest = max((v for vs in values for v in vs), default=0)
    top = 4 * _nice_step(max(highest, 1))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    axis_y = TOP + plot_h
    band = plot_w / max(len(labels), 1)
    gap = min(band * 0.2, 8)
    bar_w = (band - gap) / max(len(names), 1)
    bars = []
    for i, label in enumerate(labels):
        for j, name in enumerate(names):
            value = values[j][i]
            height = plot_h * value / top
            shown = _number(value)
            bars.append(
                Bar(
                    x=round(LEFT + i * band + gap / 2 + j * bar_w, 2),
                    y=round(axis_y - height, 2),
                    width=round(max(bar_w - 1, 1), 2),
                    height=round(height, 2),
                    series=j,
                    title=f"{label}: {shown}{unit} {name.lower()}",
                )
            )
    every = math.ceil(len(labels) / 12) or 1  # at most ~12 labels fit under the axis
    x_ticks = [
        Tick(position=round(LEFT + i * band + band / 2, 2), label=label)
        for i, label in enumerate(labels)
        if i % every == 0
    ]
    y_ticks = [
        Tick(position=round(axis_y - plot_h * k / 4, 2), label=f"{_number(top * k / 4)}{unit}")
        for k in range(5)
    ]
    return BarChart(
        empty=highest == 0,
        ident=ident,
        title=title,
        description=description,
        series=names,
        bars=bars,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        bottom=axis_y,
    )


def period_label(period: date | None, group: str) -> str:
    if period is None:
        return "Total"
    if group == "week":
        return f"Week of {period:%a %-d %b %Y}"
    return f"{period:%a %-d %b %Y}"


def _short(period: date, group: str) -> str:
    return f"w/c {period:%-d %b}" if group == "week" else f"{period:%-d %b}"


# --- tables: rows for the page and for CSV ------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """One table: what the page shows and the CSV holds, the same cells in the same order."""

    name: str
    caption: str
    header: list[str]
    rows: list[list[object]]
    footers: list[list[object]] = field(default_factory=list)  # totals
    numeric_from: int = 1  # columns from here on are right-aligned numbers


def _bookings_table(report: reports.BookingsReport, group: str) -> Table:
    def cells(row: reports.BookingsRow) -> list[object]:
        return [
            period_label(row.period, group),
            row.made,
            row.confirmed,
            row.starting,
            row.cancelled,
            row.no_shows,
            row.cancellation_rate,
            row.no_show_rate,
        ]

    return Table(
        name="bookings",
        caption="Bookings",
        header=[
            "Period",
            "Made (by booking date)",
            "Confirmed (by booking date)",
            "Confirmed, starting (by start)",
            "Cancelled (by start)",
            "No-shows (by start)",
            "Cancellation rate (%)",
            "No-show rate (%)",
        ],
        rows=[cells(r) for r in report.rows],
        footers=[cells(report.total)],
    )


def _revenue_table(report: reports.RevenueReport, group: str) -> Table:
    def cells(row: reports.RevenueRow) -> list[object]:
        return [
            period_label(row.period, group),
            row.currency,
            row.collected,
            row.refunded,
            row.net,
            row.outstanding,
        ]

    return Table(
        name="revenue",
        caption="Revenue (by booking date)",
        header=["Period", "Currency", "Collected", "Refunded", "Net", "Outstanding"],
        rows=[cells(r) for r in report.rows],
        footers=[cells(total) for total in report.totals],
        numeric_from=2,
    )


def _occupancy_tables(report: reports.OccupancyReport, group: str, zone) -> tuple[Table, Table]:
    def period_cells(row: reports.OccupancyPeriod) -> list[object]:
        return [
            period_label(row.period, group),
            row.sessions,
            row.sold,
            row.capacity,
            row.occupancy,
        ]

    periods = Table(
        name="occupancy",
        caption="Session occupancy per period (by session start)",
        header=["Period", "Sessions", "Places sold", "Capacity", "Occupancy (%)"],
        rows=[period_cells(r) for r in report.periods],
        footers=[period_cells(report.total)],
    )
    sessions = Table(
        name="sessions",
        caption="Occupancy per session (by session start)",
        header=["Session starts", "Offering", "Location", "Sold", "Held", "Capacity", "Occupancy (%)"],
        rows=[
            [
                venue_time(s.starts_at, zone),
                s.offering,
                s.location,
                s.sold,
                s.held,
                s.capacity,
                s.occupancy,
            ]
            for s in report.sessions
        ],
        numeric_from=3,
    )
    return periods, sessions


def _resources_table(report: reports.ResourceReport) -> Table:
    total_rate = (
        (report.total_booked_hours * 100 / report.total_working_hours).quantize(Decimal("0.1"))
        if report.total_working_hours
        else None
    )
    return Table(
        name="resources",
        caption="Appointment time per resource (by appointment start)",
        header=[
            "Resource",
            "Location",
            "Units",
            "Appointments",
            "Booked hours",
            "Working hours",
            "Booked (%)",
        ],
        rows=[
            [
                r.name,
                r.location,
                r.units,
                r.appointments,
                r.booked_hours,
                r.working_hours,
                r.utilisation,
            ]
            for r in report.resources
        ],
        footers=[
            [
                "Total",
                "",
                sum(r.units for r in report.resources),
                sum(r.appointments for r in report.resources),
                report.total_booked_hours,
                report.total_working_hours,
                total_rate,
            ]
        ],
        numeric_from=2,
    )


def _waitlist_tables(report: reports.WaitlistReport, group: str, zone) -> tuple[Table, Table]:
    periods = Table(
        name="waitlist",
        caption="Waitlist demand per period (by date joined)",
        header=["Period", "Requests (people)", "Places asked"],
        rows=[[period_label(p.period, group), p.requests, p.places] for p in report.periods],
        footers=[["Total", report.total.requests, report.total.places]],
    )
    sessions = Table(
        name="waitlist-sessions",
        caption="Waitlist demand per session (joined in the range)",
        header=["Session starts", "Offering", "Requests (people)", "Places asked", "Booked", "Still waiting"],
        rows=[
            [
                venue_time(s.starts_at, zone),
                s.offering,
                s.requests,
                s.places,
                s.booked,
                s.waiting,
            ]
            for s in report.sessions
        ],
        numeric_from=2,
    )
    return periods, sessions


# One builder per CSV table name: each makes exactly one call into staff.reports.
TABLES: dict[str, Callable[[ReportFilters], list[Table]]] = {
    "bookings": lambda f: [_bookings_table(reports.report_bookings(filters=f), f.group)],
    "revenue": lambda f: [_revenue_table(reports.report_revenue(filters=f), f.group)],
    "occupancy": lambda f: [_occupancy_tables(reports.report_occupancy(filters=f), f.group, f.zone)[0]],
    "sessions": lambda f: [_occupancy_tables(reports.report_occupancy(filters=f), f.group, f.zone)[1]],
    "resources": lambda f: [_resources_table(reports.report_resources(filters=f))],
    "waitlist": lambda f: [_waitlist_tables(reports.report_waitlist(filters=f), f.group, f.zone)[0]],
    "waitlist-sessions": lambda f: [_waitlist_tables(reports.report_waitlist(filters=f), f.group, f.zone)[1]],
}


def _safe_cell(value: object) -> object:
    """Keep spreadsheets from running a name like "=HYPERLINK(…)" as a formula (CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_response(tables: Iterable[Table], filters: ReportFilters, name: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"report-{name}-{filters.start_date:%Y%m%d}-{filters.end_date:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    for i, table in enumerate(tables):
        if i:
            writer.writerow([])
        writer.writerow(table.header)
        for row in [*table.rows, *table.footers]:
            writer.writerow([_safe_cell(c) for c in row])
    return response


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
    labels = [_short(p, group) for p in filters.periods]
    span = f"{filters.start_date:%-d %b %Y} to {filters.end_date:%-d %b %Y}, per {group}"

    bookings = reports.report_bookings(filters=filters)
    revenue = reports.report_revenue(filters=filters)
    occupancy = reports.report_occupancy(filters=filters)
    resources = reports.report_resources(filters=filters)
    waitlist = reports.report_waitlist(filters=filters)

    occupancy_periods, occupancy_sessions = _occupancy_tables(occupancy, group, zone)
    waitlist_periods, waitlist_sessions = _waitlist_tables(waitlist, group, zone)
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
            tables=[_bookings_table(bookings, group)],
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
            tables=[_revenue_table(revenue, group)],
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
            tables=[_resources_table(resources)],
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
        return _csv_response(TABLES[name](filters), filters, name)

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
