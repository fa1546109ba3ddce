"""How the day schedule is laid out: the page's plain data and the arithmetic that places it.

Positions are percentages of the shown stretch of real time (seconds since the epoch in, percentages
out), so an hour is as wide on a DST day as on any other and the template only places boxes. Hour
marks are wall-clock hours at their real instants; where the zone's offset changes inside the shown
stretch, labels carry the zone abbreviation so the two 01:00s of an autumn night can be told apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from django.urls import reverse

from booking.models import BookingStatus
from inventory.availability import (
    ResourceCalendar,
    Span,
    from_ts,
    gaps,
    merge,
    to_ts,
    wall_bound,
    wall_instants,
)
from inventory.models import (
    Location,
    Resource,
    Session,
)

FALLBACK_HOURS = (7, 22)  # shown when no resource works that day and nothing is booked


# The CSS class of each status, so the template colours blocks without knowing the statuses.
STATUS_TONE = {
    BookingStatus.HELD: "pending",
    BookingStatus.AWAITING_PAYMENT: "pending",
    BookingStatus.PAYMENT_FAILED: "failed",
    BookingStatus.CONFIRMED: "confirmed",
    BookingStatus.COMPLETED: "completed",
    BookingStatus.NO_SHOW: "no-show",
    BookingStatus.CANCELLED: "gone",
    BookingStatus.EXPIRED: "gone",
    BookingStatus.REFUNDED: "gone",
}


@dataclass(frozen=True)
class HourMark:
    """A wall-clock hour on the axis, at its real instant."""

    at: datetime  # aware, in the location's zone
    label: str  # "09:00", or "01:00 BST" on a day the clocks change
    left: float  # percent of the shown stretch

    @property
    def time(self) -> str:
        return self.label.split(" ")[0]

    @property
    def abbreviation(self) -> str:
        return self.label.partition(" ")[2]


@dataclass(frozen=True)
class Shade:
    """Time a resource cannot be booked: outside its hours, a blackout, or busy elsewhere."""

    kind: str  # "off" | "blackout" | "busy"
    left: float
    width: float
    label: str
    time_label: str
    source: str = ""  # busy blocks: "Calendar" or "Manual"
    url: str = ""


@dataclass(frozen=True)
class Block:
    """Time taken on one unit: an appointment's booking, a session, or something unknown."""

    kind: str  # "booking" | "session" | "other"
    left: float
    width: float
    before: float  # buffer before, percent of the block's own width
    after: float  # buffer after, percent of the block's own width
    starts_at: datetime  # the appointment itself, local
    ends_at: datetime
    time_label: str
    title: str  # offering name
    url: str = ""
    reference: str = ""
    customer: str = ""
    status: str = ""
    status_label: str = ""
    tone: str = ""  # CSS class for the colour
    needs_attention: bool = False
    attention_reason: str = ""
    sold: int | None = None  # sessions: places sold / held / capacity
    held: int | None = None
    capacity: int | None = None
    with_resources: tuple[str, ...] = ()  # sessions: the other resources it uses
    clipped_start: bool = False  # starts before the shown stretch
    clipped_end: bool = False


@dataclass
class Lane:
    label: str  # "" for a single resource, "#2" for a pool's unit
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Row:
    resource_id: int
    name: str
    kind: str
    kind_label: str
    count: int
    working_label: str  # "09:00-17:00", "Not working", "Closed (date override)"
    lanes: list[Lane]
    shades: list[Shade]
    url: str


@dataclass
class DaySchedule:
    location: Location
    day: date
    zone_name: str
    abbreviations: tuple[str, ...]  # ("GMT", "BST") on a day the clocks change
    day_hours: float  # real hours of the local day: 23, 24 or 25
    starts_at: datetime  # the shown stretch, local
    ends_at: datetime
    stretch_label: str  # "09:00–19:00", "00:00 GMT–24:00 BST" (the template's date filter would use UTC)
    hours: list[HourMark]
    rows: list[Row]
    now_left: float | None  # where "now" is, if inside the shown stretch
    whole_day: bool

    @property
    def clocks_change(self) -> bool:
        return len(self.abbreviations) > 1 or self.day_hours != 24

    @property
    def block_count(self) -> int:
        return sum(len(lane.blocks) for row in self.rows for lane in row.lanes)


def shown_stretch(
    day: date, zone: ZoneInfo, day_span: Span, working: dict[int, list[Span]], allocations: list[dict]
) -> Span:
    """Earliest to latest working hour or booked time, rounded out to whole local hours, within the day."""
    day_start, day_end = day_span
    edges = [edge for spans in working.values() for span in spans for edge in span]
    edges += [to_ts(a[key]) for a in allocations for key in ("lower", "upper")]
    edges = [min(max(edge, day_start), day_end) for edge in edges]
    if not edges or max(edges) <= min(edges):
        first, last = FALLBACK_HOURS
        return wall_bound(day, time(first), zone, is_end=False), wall_bound(
            day, time(last), zone, is_end=True
        )
    start_local = from_ts(min(edges)).astimezone(zone)
    start = (
        wall_bound(day, time(start_local.hour), zone, is_end=False)
        if start_local.date() == day
        else day_start
    )
    start = min(start, min(edges))  # a zone whose hour starts in a gap: never cut the first block
    end_local = from_ts(max(edges)).astimezone(zone)
    if end_local.date() != day:
        return start, day_end
    hour = end_local.hour + (1 if (end_local.minute, end_local.second) != (0, 0) else 0)
    end = day_end if hour == 24 else wall_bound(day, time(hour), zone, is_end=True)
    return start, max(end, max(edges))


def hour_marks(day: date, zone: ZoneInfo, view: Span, *, changing: bool) -> list[HourMark]:
    """Every instant the clocks show a whole hour within *view*: none in a gap, two in a fold."""
    instants = sorted(
        instant
        for hour in range(24)
        for instant in wall_instants(day, time(hour), zone)
        if view[0] <= instant < view[1]
    )
    if not instants or instants[0] != view[0]:
        instants.insert(0, view[0])  # the stretch starts inside a gap: label where the clocks are
    marks = []
    for instant in instants:
        local = from_ts(instant).astimezone(zone)
        label = f"{local:%H:%M %Z}" if changing else f"{local:%H:%M}"
        marks.append(HourMark(at=local, label=label, left=_percent(instant - view[0], view)))
    return marks


def shown_stretch_label(view: Span, day_end: int, zone: ZoneInfo, *, changing: bool) -> str:
    fmt = "%H:%M %Z" if changing else "%H:%M"
    start, end = from_ts(view[0]).astimezone(zone), from_ts(view[1]).astimezone(zone)
    end_text = f"24:00 {end:%Z}" if changing else "24:00"
    return f"{start:{fmt}}–{end_text if view[1] == day_end else format(end, fmt)}"


def zone_abbreviations(start: int, end: int, zone: ZoneInfo) -> tuple[str, ...]:
    """The zone's abbreviations over `[start, end)`, in order (two on a day the clocks change)."""
    names: list[str] = []
    for instant in range(start, end, 900):
        name = from_ts(instant).astimezone(zone).tzname() or ""
        if not names or names[-1] != name:
            names.append(name)
    return tuple(dict.fromkeys(names))


def _percent(seconds: float, view: Span) -> float:
    return round(100 * seconds / (view[1] - view[0]), 4)


def _place(start: int, end: int, view: Span) -> tuple[float, float, bool, bool] | None:
    """Left and width in percent of *view*, and whether it was cut at either end; None if outside."""
    lo, hi = max(start, view[0]), min(end, view[1])
    if hi <= lo:
        return None
    return _percent(lo - view[0], view), _percent(hi - lo, view), start < view[0], end > view[1]


def _times(start: datetime, end: datetime, zone: ZoneInfo, *, changing: bool) -> str:
    start, end = start.astimezone(zone), end.astimezone(zone)
    fmt = "%H:%M %Z" if changing else "%H:%M"
    text = f"{start:{fmt}}–{end:{fmt}}"
    if end.date() != start.date():
        text += f" (ends {end:%a %d %b})"
    return text


def resource_row(
    resource: dict,
    *,
    units: list[tuple[int, int, bool]],
    allocations: list[dict],
    working: list[Span],
    calendar: ResourceCalendar,
    blackouts: list[dict],
    busy: list[dict],
    bookings: dict[str, dict],
    sessions: dict[str, dict],
    session_resources: dict[str, list[str]],
    view: Span,
    day: date,
    zone: ZoneInfo,
    changing: bool,
) -> Row:
    rid = resource["pk"]
    # One lane per active unit, plus any retired unit that still holds time today.
    used = {a["unit_id"] for a in allocations}
    shown = [(uid, number) for uid, number, active in units if active or uid in used]
    pool = resource["count"] > 1 or len(shown) > 1
    lanes = {uid: Lane(label=f"#{number}" if pool else "") for uid, number in shown}
    if not lanes:
        lanes[0] = Lane(label="")

    for allocation in allocations:
        holder = allocation["holder"]
        others = tuple(name for name in session_resources.get(holder, ()) if name != resource["name"])
        block = _block(
            allocation, bookings.get(holder), sessions.get(holder), others, view, zone, changing=changing
        )
        if block is not None:
            lanes.get(allocation["unit_id"], next(iter(lanes.values()))).blocks.append(block)

    shades: list[Shade] = []

    def shade(kind: str, start: datetime, end: datetime, label: str, **links: str) -> None:
        placed = _place(to_ts(start), to_ts(end), view)
        if placed:
            time_label = _times(start, end, zone, changing=changing)
            shades.append(
                Shade(kind=kind, left=placed[0], width=placed[1], label=label, time_label=time_label, **links)
            )

    for start, end in gaps(merge(working), view):
        shade("off", from_ts(start), from_ts(end), "Not working")
    for blackout in blackouts:
        shade(
            "blackout",
            blackout["starts_at"],
            blackout["ends_at"],
            blackout["reason"] or "Blackout",
            source="Whole location" if blackout["resource_id"] is None else "This resource",
            url=reverse("admin:inventory_blackout_change", args=[blackout["pk"]]),
        )
    for block in busy:
        shade(
            "busy",
            block["starts_at"],
            block["ends_at"],
            block["summary"] or "Busy",
            source="Calendar" if block["source"].startswith("calendar:") else block["source"].title(),
            url=reverse("admin:inventory_busyblock_change", args=[block["pk"]]),
        )
    return Row(
        resource_id=rid,
        name=resource["name"],
        kind=resource["kind"],
        kind_label=Resource.Kind(resource["kind"]).label,
        count=resource["count"],
        working_label=_working_label(calendar, day, working, zone, changing=changing),
        lanes=list(lanes.values()),
        shades=shades,
        url=reverse("admin:inventory_resource_change", args=[rid]),
    )


def _working_label(
    calendar: ResourceCalendar, day: date, working: list[Span], zone: ZoneInfo, *, changing: bool
) -> str:
    if day in calendar.overrides and not calendar.overrides[day]:
        return "Closed today"
    if not working:
        return "Not working today"
    text = ", ".join(_times(from_ts(s), from_ts(e), zone, changing=changing) for s, e in working)
    return f"{text} (changed hours)" if day in calendar.overrides else text


def _block(
    allocation: dict,
    booking: dict | None,
    session: dict | None,
    others: tuple[str, ...],
    view: Span,
    zone: ZoneInfo,
    *,
    changing: bool,
) -> Block | None:
    span = (to_ts(allocation["lower"]), to_ts(allocation["upper"]))
    placed = _place(*span, view)
    if placed is None:
        return None
    left, width, clipped_start, clipped_end = placed
    shown = (max(span[0], view[0]), min(span[1], view[1]))
    length = shown[1] - shown[0]
    before = max(0, min(to_ts(allocation["starts_at"]), shown[1]) - shown[0])
    after = max(0, shown[1] - max(to_ts(allocation["ends_at"]), shown[0]))
    common = {
        "left": left,
        "width": width,
        "before": round(100 * before / length, 4),
        "after": round(100 * after / length, 4),
        "starts_at": allocation["starts_at"].astimezone(zone),
        "ends_at": allocation["ends_at"].astimezone(zone),
        "time_label": _times(allocation["starts_at"], allocation["ends_at"], zone, changing=changing),
        "clipped_start": clipped_start,
        "clipped_end": clipped_end,
    }
    if booking is not None:
        status = booking["booking__status"]
        return Block(
            kind="booking",
            title=booking["booking__offering__name"],
            url=reverse("admin:booking_booking_change", args=[booking["booking_id"]]),
            reference=booking["booking__reference"],
            customer=booking["booking__customer__name"],
            status=status,
            status_label=BookingStatus(status).label,
            tone=STATUS_TONE.get(status, "other"),
            needs_attention=booking["booking__needs_attention"],
            attention_reason=booking["booking__attention_reason"],
            **common,
        )
    if session is not None:
        cancelled = session["status"] == Session.Status.CANCELLED
        return Block(
            kind="session",
            title=session["offering__name"],
            url=reverse("admin:inventory_session_change", args=[session["pk"]]),
            status=session["status"],
            status_label="Cancelled session" if cancelled else session["offering__kind"].title(),
            tone="gone" if cancelled else "session",
            sold=session.get("sold"),
            held=session.get("held"),
            capacity=session.get("capacity"),
            with_resources=others,
            **common,
        )
    return Block(kind="other", title="Taken", status_label=allocation["holder"], tone="other", **common)


def now_position(now: datetime | None, view: Span) -> float | None:
    if now is None:
        return None
    instant = to_ts(now)
    return _percent(instant - view[0], view) if view[0] <= instant < view[1] else None
