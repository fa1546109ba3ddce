"""The Reports page's tables, the same rows on the page and in CSV downloads.

Each builder turns one `staff.reports` result into a `Table`; `TABLES` maps a CSV table name to the
one call into `staff.reports` that fills it. Cells a spreadsheet would run as a formula are quoted
(CSV injection).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.http import HttpResponse

from core.times import venue_time
from staff import reports
from staff.report_charts import period_label
from staff.reports import ReportFilters


@dataclass(frozen=True)
class Table:
    """One table: what the page shows and the CSV holds, the same cells in the same order."""

    name: str
    caption: str
    header: list[str]
    rows: list[list[object]]
    footers: list[list[object]] = field(default_factory=list)  # totals
    numeric_from: int = 1  # columns from here on are right-aligned numbers


def _cells(first: object, row: object, attributes: str) -> list[object]:
    """One table row: `first` (a period or a start time, made readable), then `row`'s named attributes."""
    return [first, *(getattr(row, name) for name in attributes.split())]


def bookings_table(report: reports.BookingsReport, group: str) -> Table:
    def cells(row: reports.BookingsRow) -> list[object]:
        return _cells(
            period_label(row.period, group),
            row,
            "made confirmed starting cancelled no_shows cancellation_rate no_show_rate",
        )

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


def revenue_table(report: reports.RevenueReport, group: str) -> Table:
    def cells(row: reports.RevenueRow) -> list[object]:
        return _cells(period_label(row.period, group), row, "currency collected refunded net outstanding")

    return Table(
        name="revenue",
        caption="Revenue (by booking date)",
        header=["Period", "Currency", "Collected", "Refunded", "Net", "Outstanding"],
        rows=[cells(r) for r in report.rows],
        footers=[cells(total) for total in report.totals],
        numeric_from=2,
    )


def occupancy_tables(report: reports.OccupancyReport, group: str, zone) -> tuple[Table, Table]:
    def period_cells(row: reports.OccupancyPeriod) -> list[object]:
        return _cells(period_label(row.period, group), row, "sessions sold capacity occupancy")

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
            _cells(venue_time(s.starts_at, zone), s, "offering location sold held capacity occupancy")
            for s in report.sessions
        ],
        numeric_from=3,
    )
    return periods, sessions


def resources_table(report: reports.ResourceReport) -> Table:
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
            _cells(r.name, r, "location units appointments booked_hours working_hours utilisation")
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


def waitlist_tables(report: reports.WaitlistReport, group: str, zone) -> tuple[Table, Table]:
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
            _cells(venue_time(s.starts_at, zone), s, "offering requests places booked waiting")
            for s in report.sessions
        ],
        numeric_from=2,
    )
    return periods, sessions


# One builder per CSV table name: each makes exactly one call into staff.reports.
TABLES: dict[str, Callable[[ReportFilters], list[Table]]] = {
    "bookings": lambda f: [bookings_table(reports.report_bookings(filters=f), f.group)],
    "revenue": lambda f: [revenue_table(reports.report_revenue(filters=f), f.group)],
    "occupancy": lambda f: [occupancy_tables(reports.report_occupancy(filters=f), f.group, f.zone)[0]],
    "sessions": lambda f: [occupancy_tables(reports.report_occupancy(filters=f), f.group, f.zone)[1]],
    "resources": lambda f: [resources_table(reports.report_resources(filters=f))],
    "waitlist": lambda f: [waitlist_tables(reports.report_waitlist(filters=f), f.group, f.zone)[0]],
    "waitlist-sessions": lambda f: [waitlist_tables(reports.report_waitlist(filters=f), f.group, f.zone)[1]],
}


def _safe_cell(value: object) -> object:
    """Keep spreadsheets from running a name like "=HYPERLINK(…)" as a formula (CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def tables_csv(tables: Iterable[Table], filters: ReportFilters, name: str) -> HttpResponse:
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
