"""Business reports for managers: bookings, revenue, occupancy, resource time and waitlist demand.

Each report is a plain function taking `ReportFilters` and returning dataclasses. Figures are
aggregated in PostgreSQL, so every report costs a fixed handful of queries however many bookings
there are. Days and weeks are local days in the business time zone; a week starts on Monday.

Which date a figure is counted by is part of what it means:

* **made / confirmed**: the booking's `created_at` (when it was booked);
* **starting / cancelled / no-shows** and their rates: the booking's `starts_at` (when it takes place);
* **revenue** (collected, refunded, outstanding): the booking's `created_at` (sales of the period);
* **session occupancy**: the session's `starts_at`; **resource time**: the appointment's `starts_at`;
* **waitlist demand**: the entry's `created_at` (when people asked).

Revenue comes from the amounts payments reports onto the booking (`amount_paid`, `amount_refunded`),
so booking needs nothing from payments.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import (
    CharField,
    Count,
    DateField,
    DecimalField,
    F,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Concat, Greatest, Trunc

from booking.models import SOLD_STATUSES, Booking, BookingItem, BookingStatus, WaitlistEntry
from inventory.availability import intersect, to_ts
from inventory.models import Allocation, CapacityCounter, Resource, ResourceRequirement, Session
from inventory.selectors import resource_calendars

GROUPS = ("day", "week")
MAX_DAYS = 366
ZERO = Decimal("0.00")
HOUR = Decimal(3600)
ITEM_HOLDER_PREFIX = "booking_item:"  # how inventory knows a booking item (BookingItem.holder)


# --- filters and periods ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFilters:
    """What to report on: local days `start_date`..`end_date` (both included), grouped by day or week."""

    start_date: date
    end_date: date
    time_zone: str
    group: str = "day"
    offering_id: int | None = None
    location_id: int | None = None

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS}, not {self.group!r}")
        if self.end_date < self.start_date:
            raise ValueError("The report must end on or after the day it starts.")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def start_at(self) -> datetime:
        """The first instant reported on: midnight starting `start_date`, local time."""
        return datetime.combine(self.start_date, time(0), self.zone)

    @property
    def end_at(self) -> datetime:
        """The instant after the last one reported on (half-open `[start_at, end_at)`)."""
        return datetime.combine(self.end_date + timedelta(days=1), time(0), self.zone)

    def period_start(self, day: date) -> date:
        return day - timedelta(days=day.weekday()) if self.group == "week" else day

    def period_of(self, moment: datetime) -> date:
        return self.period_start(moment.astimezone(self.zone).date())

    @property
    def periods(self) -> list[date]:
        """Every period in the range, empty ones included (a week may start before `start_date`)."""
        step = timedelta(days=7 if self.group == "week" else 1)
        day, last, result = self.period_start(self.start_date), self.end_date, []
        while day <= last:
            result.append(day)
            day += step
        return result


def report_filters_default(*, today: date, time_zone: str) -> ReportFilters:
    """The last 30 days up to and including *today*, by day, everything."""
    return ReportFilters(start_date=today - timedelta(days=29), end_date=today, time_zone=time_zone)


def _period(field_name: str, filters: ReportFilters) -> Trunc:
    return Trunc(field_name, filters.group, output_field=DateField(), tzinfo=filters.zone)


def _in_range(field_name: str, filters: ReportFilters) -> Q:
    return Q(**{f"{field_name}__gte": filters.start_at, f"{field_name}__lt": filters.end_at})


def _scoped(queryset: QuerySet, filters: ReportFilters, *, offering: str) -> QuerySet:
    """Narrow to one offering and/or location; *offering* is the path to the offering's id field."""
    if filters.offering_id:
        queryset = queryset.filter(**{f"{offering}_id": filters.offering_id})
    if filters.location_id:
        queryset = queryset.filter(**{f"{offering}__location_id": filters.location_id})
    return queryset


def _rate(part: int, whole: int) -> Decimal | None:
    """*part* of *whole* as a percentage with one decimal, or None when there is nothing to divide."""
    if not whole:
        return None
    return (Decimal(part) * 100 / whole).quantize(Decimal("0.1"))


# --- bookings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BookingsRow:
    """Bookings of one period (`period` None: the whole range).

    `made` counts every booking created in the period, abandoned checkouts included; `confirmed` those
    of them that were confirmed at some point (even if cancelled later). `starting` counts bookings
    that were confirmed at some point and start in the period; `cancelled` and `no_shows` are of those.
    """

    period: date | None
    made: int = 0
    confirmed: int = 0
    starting: int = 0
    cancelled: int = 0
    no_shows: int = 0

    @property
    def cancellation_rate(self) -> Decimal | None:
        """Cancelled, in % of the confirmed bookings starting in the period."""
        return _rate(self.cancelled, self.starting)

    @property
    def no_show_rate(self) -> Decimal | None:
        """No-shows, in % of the confirmed bookings starting in the period that were not cancelled."""
        return _rate(self.no_shows, self.starting - self.cancelled)


@dataclass(frozen=True)
class BookingsReport:
    rows: list[BookingsRow]
    total: BookingsRow


def report_bookings(*, filters: ReportFilters) -> BookingsReport:
    """Bookings made and confirmed (by `created_at`), and cancelled and no-shows (by `starts_at`).

    Two queries.
    """
    bookings = _scoped(Booking.objects.all(), filters, offering="offering")
    made = {
        row["period"]: row
        for row in bookings.filter(_in_range("created_at", filters))
        .annotate(period=_period("created_at", filters))
        .values("period")
        .annotate(made=Count("id"), confirmed=Count("id", filter=Q(confirmed_at__isnull=False)))
        .order_by()
    }
    attended = {
        row["period"]: row
        for row in bookings.filter(_in_range("starts_at", filters), confirmed_at__isnull=False)
        .annotate(period=_period("starts_at", filters))
        .values("period")
        .annotate(
            starting=Count("id"),
            cancelled=Count("id", filter=Q(cancelled_at__isnull=False)),
            no_shows=Count("id", filter=Q(status=BookingStatus.NO_SHOW)),
        )
        .order_by()
    }
    rows = []
    for period in filters.periods:
        a, b = made.get(period, {}), attended.get(period, {})
        rows.append(
            BookingsRow(
                period=period,
                made=a.get("made", 0),
                confirmed=a.get("confirmed", 0),
                starting=b.get("starting", 0),
                cancelled=b.get("cancelled", 0),
                no_shows=b.get("no_shows", 0),
            )
        )
    total = BookingsRow(
        period=None,
        **{
            name: sum(getattr(r, name) for r in rows)
            for name in ("made", "confirmed", "starting", "cancelled", "no_shows")
        },
    )
    return BookingsReport(rows=rows, total=total)


# --- revenue ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevenueRow:
    """Money of the bookings created in one period, in one currency (`period` None: the whole range).

    `collected` is what was paid (`amount_paid`), `refunded` what went back (`amount_refunded`),
    `net` the difference. `outstanding` is what confirmed, completed and no-show bookings still owe,
    `Booking.amount_due` (total − paid, never below zero); cancelled or expired bookings owe nothing.
    """

    period: date | None
    currency: str
    collected: Decimal = ZERO
    refunded: Decimal = ZERO
    outstanding: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return self.collected - self.refunded


@dataclass(frozen=True)
class RevenueReport:
    currencies: list[str]
    rows: list[RevenueRow]  # every period × currency, in period then currency order
    totals: list[RevenueRow]  # one per currency

    def rows_in(self, currency: str) -> list[RevenueRow]:
        return [r for r in self.rows if r.currency == currency]


def report_revenue(*, filters: ReportFilters) -> RevenueReport:
    """Collected, refunded and outstanding money of bookings created in the range, per currency.

    One query.
    """
    money = DecimalField(max_digits=12, decimal_places=2)
    found = {
        (row["period"], row["currency"]): row
        for row in _scoped(Booking.objects.all(), filters, offering="offering")
        .filter(_in_range("created_at", filters))
        .annotate(period=_period("created_at", filters))
        .values("period", "currency")
        .annotate(
            collected=Coalesce(Sum("amount_paid"), Value(ZERO), output_field=money),
            refunded=Coalesce(Sum("amount_refunded"), Value(ZERO), output_field=money),
            # Booking.amount_due, in SQL: max(total - paid, 0), only for bookings that still stand.
            outstanding=Coalesce(
                Sum(
                    Greatest(F("total_amount") - F("amount_paid"), Value(ZERO), output_field=money),
                    filter=Q(status__in=SOLD_STATUSES),
                ),
                Value(ZERO),
                output_field=money,
            ),
        )
        .order_by()
    }
    currencies = sorted({currency for _, currency in found})
    rows = []
    for period in filters.periods:
        for currency in currencies:
            row = found.get((period, currency), {})
            rows.append(
                RevenueRow(
                    period=period,
                    currency=currency,
                    collected=row.get("collected", ZERO),
                    refunded=row.get("refunded", ZERO),
                    outstanding=row.get("outstanding", ZERO),
                )
            )
    totals = [
        RevenueRow(
            period=None,
            currency=currency,
            collected=sum((r.collected for r in rows if r.currency == currency), ZERO),
            refunded=sum((r.refunded for r in rows if r.currency == currency), ZERO),
            outstanding=sum((r.outstanding for r in rows if r.currency == currency), ZERO),
        )
        for currency in currencies
    ]
    return RevenueReport(currencies=currencies, rows=rows, totals=totals)


# --- session occupancy --------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionOccupancy:
    """One scheduled session starting in the range: places sold and held of its total capacity."""

    session_id: int
    offering: str
    location: str
    starts_at: datetime
    capacity: int
    sold: int
    held: int

    @property
    def occupancy(self) -> Decimal | None:
        """Sold places in % of the capacity."""
        return _rate(self.sold, self.capacity)


@dataclass(frozen=True)
class OccupancyPeriod:
    period: date | None
    sessions: int = 0
    capacity: int = 0
    sold: int = 0

    @property
    def occupancy(self) -> Decimal | None:
        return _rate(self.sold, self.capacity)


@dataclass(frozen=True)
class OccupancyReport:
    sessions: list[SessionOccupancy]
    periods: list[OccupancyPeriod]
    total: OccupancyPeriod


def report_occupancy(*, filters: ReportFilters) -> OccupancyReport:
    """Sold / capacity of every scheduled session starting in the range, from its total counter.

    One query (the session's total `CapacityCounter`: zone and ticket type empty).
    """
    counters = (
        _scoped(
            CapacityCounter.objects.filter(
                zone__isnull=True,
                ticket_type__isnull=True,
                session__status=Session.Status.SCHEDULED,
            ),
            filters,
            offering="session__offering",
        )
        .filter(_in_range("session__starts_at", filters))
        .order_by("session__starts_at", "session_id")
        .values_list(
            "session_id",
            "session__offering__name",
            "session__offering__location__name",
            "session__starts_at",
            "capacity",
            "sold",
            "held",
        )
    )
    sessions = [SessionOccupancy(*row) for row in counters]
    by_period: dict[date, list[SessionOccupancy]] = defaultdict(list)
    for s in sessions:
        by_period[filters.period_of(s.starts_at)].append(s)

    def _sum(period: date | None, of: list[SessionOccupancy]) -> OccupancyPeriod:
        return OccupancyPeriod(
            period=period,
            sessions=len(of),
            capacity=sum(s.capacity for s in of),
            sold=sum(s.sold for s in of),
        )

    return OccupancyReport(
        sessions=sessions,
        periods=[_sum(p, by_period.get(p, [])) for p in filters.periods],
        total=_sum(None, sessions),
    )


# --- resource time ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceTime:
    """Appointment time booked on one resource in the range, against its working hours.

    `booked_hours`: appointments of confirmed, completed and no-show bookings starting in the range,
    without buffers (a pool counts every unit's appointments). `working_hours`: the schedule (weekly
    hours, replaced by date overrides) times the number of active units; blackouts and outside busy
    time are not subtracted. Class and event sessions a resource teaches are not counted.
    """

    resource_id: int
    name: str
    location: str
    units: int
    appointments: int
    booked_hours: Decimal
    working_hours: Decimal

    @property
    def utilisation(self) -> Decimal | None:
        """Booked hours in % of working hours."""
        if not self.working_hours:
            return None
        return (self.booked_hours * 100 / self.working_hours).quantize(Decimal("0.1"))


@dataclass(frozen=True)
class ResourceReport:
    resources: list[ResourceTime]
    total_booked_hours: Decimal
    total_working_hours: Decimal


def _hours(seconds: float | int) -> Decimal:
    return (Decimal(seconds) / HOUR).quantize(Decimal("0.01"))


def report_resources(*, filters: ReportFilters) -> ResourceReport:
    """Booked appointment hours per resource (from its allocations) and its working hours.

    A fixed number of queries: the allocations, the resources, and the resources' calendars.
    """
    sold_holders = BookingItem.objects.filter(booking__status__in=SOLD_STATUSES).values(
        holder_text=Concat(Value(ITEM_HOLDER_PREFIX), Cast("pk", CharField()), output_field=CharField())
    )
    allocations = Allocation.objects.filter(
        _in_range("starts_at", filters),
        is_active=True,
        holder__startswith=ITEM_HOLDER_PREFIX,
        holder__in=sold_holders,
    )
    if filters.offering_id:
        allocations = allocations.filter(offering_id=filters.offering_id)
    if filters.location_id:
        allocations = allocations.filter(resource__location_id=filters.location_id)
    booked = {
        row["resource_id"]: row
        for row in allocations.values("resource_id")
        .annotate(appointments=Count("id"), booked=Sum(F("ends_at") - F("starts_at")))
        .order_by()
    }

    resources = Resource.objects.filter(Q(is_active=True) | Q(pk__in=list(booked)))
    if filters.location_id:
        resources = resources.filter(location_id=filters.location_id)
    if filters.offering_id:
        candidates = ResourceRequirement.candidates.through.objects.filter(
            resourcerequirement__offering_id=filters.offering_id
        ).values("resource_id")
        resources = resources.filter(Q(pk__in=candidates) | Q(pk__in=list(booked)))
    rows = list(
        resources.order_by("location__name", "name", "pk").values_list("pk", "name", "location__name")
    )

    calendars = resource_calendars(
        resource_ids={pk for pk, _, _ in rows}, start=filters.start_at, end=filters.end_at
    )
    lo, hi = to_ts(filters.start_at), to_ts(filters.end_at)
    result = []
    for pk, name, location in rows:
        calendar = calendars.get(pk)
        units = len(calendar.units) if calendar else 0
        working = (
            sum(e - s for s, e in intersect(calendar.working_spans(lo, hi), [(lo, hi)])) * units
            if calendar
            else 0
        )
        found = booked.get(pk, {})
        result.append(
            ResourceTime(
                resource_id=pk,
                name=name,
                location=location,
                units=units,
                appointments=found.get("appointments", 0),
                booked_hours=_hours(found["booked"].total_seconds()) if found else ZERO,
                working_hours=_hours(working),
            )
        )
    return ResourceReport(
        resources=result,
        total_booked_hours=sum((r.booked_hours for r in result), ZERO),
        total_working_hours=sum((r.working_hours for r in result), ZERO),
    )


# --- waitlist -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitlistSessionRow:
    """Waitlist entries of one session created in the range: requests (one per person) and places.

    `booked` counts entries that took the place they were offered; `waiting` those still waiting or
    holding an offer.
    """

    session_id: int
    offering: str
    starts_at: datetime
    requests: int
    places: int
    booked: int
    waiting: int


@dataclass(frozen=True)
class WaitlistPeriod:
    period: date | None
    requests: int = 0
    places: int = 0


@dataclass(frozen=True)
class WaitlistReport:
    sessions: list[WaitlistSessionRow]
    periods: list[WaitlistPeriod]
    total: WaitlistPeriod = field(default_factory=lambda: WaitlistPeriod(period=None))


def report_waitlist(*, filters: ReportFilters) -> WaitlistReport:
    """Waitlist demand: entries created in the range, per session and per period. Two queries."""
    entries = _scoped(WaitlistEntry.objects.all(), filters, offering="session__offering").filter(
        _in_range("created_at", filters)
    )
    sessions = [
        WaitlistSessionRow(**row)
        for row in entries.values("session_id")
        .annotate(
            offering=F("session__offering__name"),
            starts_at=F("session__starts_at"),
            requests=Count("id"),
            places=Sum("quantity"),
            booked=Count("id", filter=Q(status=WaitlistEntry.Status.BOOKED)),
            waiting=Count(
                "id", filter=Q(status__in=[WaitlistEntry.Status.WAITING, WaitlistEntry.Status.OFFERED])
            ),
        )
        .order_by("starts_at", "session_id")
    ]
    found = {
        row["period"]: row
        for row in entries.annotate(period=_period("created_at", filters))
        .values("period")
        .annotate(requests=Count("id"), places=Sum("quantity"))
        .order_by()
    }
    periods = [
        WaitlistPeriod(
            period=p, requests=found.get(p, {}).get("requests", 0), places=found.get(p, {}).get("places", 0)
        )
        for p in filters.periods
    ]
    total = WaitlistPeriod(
        period=None, requests=sum(p.requests for p in periods), places=sum(p.places for p in periods)
    )
    return WaitlistReport(sessions=sessions, periods=periods, total=total)
