"""The availability engine: pure functions over plain data, handed `now`.

Nothing here touches the database or the clock; `inventory.selectors` loads the inputs in a handful
of queries and calls these functions, and the booking service calls the same functions again under
lock before it takes a slot, so what a customer is shown and what the database accepts agree.

Time rules, on purpose:

* Instants are UTC; periods are half-open `[start, end)`.
* Working hours and the slot grid are wall-clock times in the resource's / location's zone, expanded
  per local date with `zoneinfo`.
* A wall-clock time that does not exist (the spring-forward gap) is not a slot; a working period
  that starts or ends inside the gap starts or ends at the transition itself.
* A wall-clock time that happens twice (the autumn fold) is two different instants; both are slots
  (shown with their zone abbreviation). A working period starts the first time the clocks show its
  start and ends the last time they reach its end, so it is one continuous stretch of real time and
  nobody's hours shrink.
* An appointment's own time `[t, t + duration)` lies inside working hours; the buffered time
  `[t - buffer_before, t + duration + buffer_after)` overlaps no allocation, busy block or blackout.
"""

from __future__ import annotations

import bisect
import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

Span = tuple[int, int]  # [start, end) in integer seconds since the epoch (UTC)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ts(moment: datetime) -> int:
    return int((moment - EPOCH).total_seconds())


def from_ts(ts: int) -> datetime:
    return EPOCH + timedelta(seconds=ts)


# --- wall-clock time ----------------------------------------------------------------------------


def _exists(naive: datetime, zone: ZoneInfo, fold: int) -> bool:
    aware = naive.replace(tzinfo=zone, fold=fold)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive


def wall_instants(day: date, at: time, zone: ZoneInfo) -> list[int]:
    """Every instant at which the clocks in *zone* show *day* *at*: none (gap), one, or two (fold)."""
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [to_ts(first)] if _exists(naive, zone, 0) else []
    instants = [to_ts(x) for x, fold in ((first, 0), (second, 1)) if _exists(naive, zone, fold)]
    return sorted(set(instants))


@functools.lru_cache(maxsize=65536)
def wall_bound(day: date, at: time, zone: ZoneInfo, *, is_end: bool) -> int:
    """The instant a wall-clock period starts (or ends) at, resolving gaps and folds as documented.

    A start is the first time the clocks show *at*. An end is the last time the clocks reach *at*
    coming from an earlier time: inside a fold that is the second occurrence, but at the very start
    of a fold (clocks at 02:00 going back to 02:00) it is the first, because after it the clocks
    never again show a time before *at*.
    """
    instants = wall_instants(day, at, zone)
    if instants and not is_end:
        return instants[0]
    if instants:
        arrivals = [t for t in instants if datetime.fromtimestamp(t - 1, zone).time() < at]
        return (arrivals or instants)[-1]
    # Inside a gap: the clocks jump over this time; the period starts/ends at the jump itself.
    naive = datetime.combine(day, at)
    low = to_ts(naive.replace(tzinfo=zone, fold=1))  # read with the later offset: before the jump
    high = to_ts(naive.replace(tzinfo=zone, fold=0))  # read with the earlier offset: after the jump
    low, high = min(low, high), max(low, high)
    offset_after = datetime.fromtimestamp(high, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_after:
            high = middle
        else:
            low = middle
    return high


def local_dates(start: int, end: int, zone: ZoneInfo) -> list[date]:
    """The local dates in *zone* that `[start, end)` touches, plus one day either side (buffers)."""
    first = datetime.fromtimestamp(start, zone).date() - timedelta(days=1)
    last = datetime.fromtimestamp(max(start, end - 1), zone).date() + timedelta(days=1)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def slot_grid(start: int, end: int, zone: ZoneInfo, interval: timedelta) -> list[int]:
    """Candidate start instants in `[start, end)`: local midnight plus multiples of *interval*.

    Wall-clock based, so slots stay on 09:00, 09:15 … across DST; days without a transition take the
    arithmetic fast path.
    """
    step = int(interval.total_seconds())
    grid: list[int] = []
    for day in local_dates(start, end, zone):
        midnight = datetime.combine(day, time(0)).replace(tzinfo=zone)
        next_midnight = datetime.combine(day + timedelta(days=1), time(0)).replace(tzinfo=zone)
        if midnight.utcoffset() == next_midnight.utcoffset() and _exists(
            midnight.replace(tzinfo=None), zone, 0
        ):
            base = to_ts(midnight)
            grid.extend(base + k * step for k in range((86400 + step - 1) // step) if k * step < 86400)
        else:
            for k in range((86400 + step - 1) // step):
                offset = k * step
                if offset >= 86400:
                    break
                at = time(offset // 3600, offset % 3600 // 60, offset % 60)
                grid.extend(wall_instants(day, at, zone))
    # Sorted before the search: a fall-back day lists both instants of each repeated time side by side
    # (first 01:00, second 01:00, first 01:15 …), and a narrow window (taking one time) would miss.
    grid = sorted(set(grid))
    return grid[bisect.bisect_left(grid, start) : bisect.bisect_left(grid, end)]


# --- interval arithmetic ------------------------------------------------------------------------


def merge(spans: Iterable[Span]) -> list[Span]:
    """Sorted, disjoint, with touching spans joined."""
    result: list[Span] = []
    for s, e in sorted(spans):
        if e <= s:
            continue
        if result and s <= result[-1][1]:
            if e > result[-1][1]:
                result[-1] = (result[-1][0], e)
        else:
            result.append((s, e))
    return result


def gaps(blocked: Sequence[Span], within: Span) -> list[Span]:
    """The free spans of *within* between the (merged) *blocked* spans."""
    free: list[Span] = []
    cursor, end = within
    for s, e in blocked:
        if e <= cursor:
            continue
        if s >= end:
            break
        if s > cursor:
            free.append((cursor, s))
        cursor = max(cursor, e)
    if cursor < end:
        free.append((cursor, end))
    return free


def intersect(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    """Intersection of two sorted disjoint lists of closed ranges [lo, hi] (lo <= hi)."""
    result: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            result.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return result


# --- inputs -------------------------------------------------------------------------------------


@dataclass
class ResourceCalendar:
    """Everything that decides when one resource can work, as loaded for a range."""

    resource_id: int
    zone: ZoneInfo
    units: list[int]
    weekly: dict[int, list[tuple[time, time]]]  # weekday -> wall-clock periods
    overrides: dict[date, list[tuple[time, time]]]  # date -> periods; [] means closed all day
    blocked: list[Span] = field(default_factory=list)  # busy blocks and blackouts, whole resource
    unit_blocked: dict[int, list[Span]] = field(default_factory=dict)  # allocations, per unit
    daily_counts: dict[int, dict[date, int]] = field(default_factory=dict)  # offering -> local date -> n

    def working_spans(self, start: int, end: int) -> list[Span]:
        spans = []
        for day in local_dates(start, end, self.zone):
            periods = self.overrides.get(day)
            if periods is None:
                periods = self.weekly.get(day.weekday(), [])
            for period_start, period_end in periods:
                s = wall_bound(day, period_start, self.zone, is_end=False)
                e = wall_bound(day, period_end, self.zone, is_end=True)
                if e > s:
                    spans.append((s, e))
        return merge(spans)


@dataclass(frozen=True)
class Requirement:
    requirement_id: int
    label: str
    quantity: int
    candidates: tuple[int, ...]


@dataclass(frozen=True)
class AppointmentRules:
    offering_id: int
    zone: ZoneInfo  # the location's zone: the slot grid is wall-clock there
    duration: timedelta
    interval: timedelta
    buffer_before: timedelta
    buffer_after: timedelta
    min_notice: timedelta
    horizon: timedelta
    sales_open_at: datetime | None
    sales_close_at: datetime | None
    daily_limit: int | None
    requirements: tuple[Requirement, ...]


@dataclass(frozen=True)
class RequirementOption:
    requirement_id: int
    label: str
    quantity: int
    resource_ids: tuple[int, ...]


@dataclass(frozen=True)
class AppointmentSlot:
    starts_at: datetime
    ends_at: datetime
    options: tuple[RequirementOption, ...]

    def resources_for(self, requirement_id: int) -> tuple[int, ...]:
        for option in self.options:
            if option.requirement_id == requirement_id:
                return option.resource_ids
        return ()


def sales_window_reason(
    *, now: datetime, sales_open_at: datetime | None, sales_close_at: datetime | None
) -> str | None:
    if sales_open_at is not None and now < sales_open_at:
        return "not_on_sale_yet"
    if sales_close_at is not None and now >= sales_close_at:
        return "sales_closed"
    return None


# --- appointments -------------------------------------------------------------------------------


def resource_start_ranges(
    calendar: ResourceCalendar, rules: AppointmentRules, window: Span
) -> dict[int, list[Span]]:
    """For each unit, the closed ranges of start instants at which this appointment fits."""
    duration = int(rules.duration.total_seconds())
    before = int(rules.buffer_before.total_seconds())
    after = int(rules.buffer_after.total_seconds())
    lo, hi = window
    reach = (lo - before - 86400, hi + duration + after + 86400)
    working = [
        (s, e - duration) for s, e in calendar.working_spans(lo, hi) if e - duration >= s
    ]  # t such that [t, t + duration) lies in the working span
    working = intersect(working, [(lo, hi - 1)])
    if not working:
        return {}
    limit_days: set[date] = set()
    if rules.daily_limit is not None:
        counts = calendar.daily_counts.get(rules.offering_id, {})
        limit_days = {day for day, n in counts.items() if n >= rules.daily_limit}
    ranges: dict[int, list[Span]] = {}
    resource_blocked = calendar.blocked
    for unit in calendar.units:
        blocked = merge([*resource_blocked, *calendar.unit_blocked.get(unit, ())])
        open_starts = [
            (s + before, e - duration - after)
            for s, e in gaps(blocked, reach)
            if e - duration - after >= s + before
        ]
        valid = intersect(working, open_starts)
        if limit_days:
            valid = _without_days(valid, limit_days, calendar.zone)
        if valid:
            ranges[unit] = valid
    return ranges


def _without_days(ranges: list[Span], days: set[date], zone: ZoneInfo) -> list[Span]:
    result = []
    for s, e in ranges:
        cursor = s
        while cursor <= e:
            day = datetime.fromtimestamp(cursor, zone).date()
            day_end = to_ts(datetime.combine(day + timedelta(days=1), time(0)).replace(tzinfo=zone)) - 1
            piece_end = min(e, day_end)
            if day not in days:
                result.append((cursor, piece_end))
            cursor = piece_end + 1
    return result


def appointment_slots(
    *,
    rules: AppointmentRules,
    calendars: dict[int, ResourceCalendar],
    start: datetime,
    end: datetime,
    now: datetime,
    only_resources: frozenset[int] | None = None,
) -> list[AppointmentSlot]:
    """Bookable start times of an appointment in `[start, end)`, each with the resources that can serve it.

    *only_resources* narrows a requirement to the named resources where it has any of them among its
    candidates (a customer who asked for one stylist).
    """
    if sales_window_reason(now=now, sales_open_at=rules.sales_open_at, sales_close_at=rules.sales_close_at):
        return []
    lo = max(to_ts(start), to_ts(now + rules.min_notice))
    hi = min(to_ts(end), to_ts(now + rules.horizon) + 1)
    if hi <= lo or not rules.requirements:
        return []
    grid = slot_grid(lo, hi, rules.zone, rules.interval)
    if not grid:
        return []

    # requirement -> grid index -> resources free there
    free_at: list[dict[int, list[int]]] = []
    for requirement in rules.requirements:
        candidates = requirement.candidates
        if only_resources is not None and only_resources.intersection(candidates):
            candidates = tuple(c for c in candidates if c in only_resources)
        per_index: dict[int, list[int]] = defaultdict(list)
        for resource_id in candidates:
            calendar = calendars.get(resource_id)
            if calendar is None:
                continue
            indices: set[int] = set()
            for unit_ranges in resource_start_ranges(calendar, rules, (lo, hi)).values():
                for s, e in unit_ranges:
                    indices.update(range(bisect.bisect_left(grid, s), bisect.bisect_right(grid, e)))
            for index in indices:
                per_index[index].append(resource_id)
        free_at.append(per_index)

    duration = rules.duration
    needs_matching = _candidates_overlap(rules.requirements)
    slots = []
    for index in sorted(set.intersection(*(set(d) for d in free_at))):
        options = tuple(
            RequirementOption(r.requirement_id, r.label, r.quantity, tuple(sorted(free_at[n][index])))
            for n, r in enumerate(rules.requirements)
        )
        if any(len(o.resource_ids) < o.quantity for o in options):
            continue
        if needs_matching and assign_resources(options) is None:
            continue
        starts_at = from_ts(grid[index])
        slots.append(AppointmentSlot(starts_at=starts_at, ends_at=starts_at + duration, options=options))
    return slots


def _candidates_overlap(requirements: Sequence[Requirement]) -> bool:
    seen: set[int] = set()
    for requirement in requirements:
        if seen.intersection(requirement.candidates):
            return True
        seen.update(requirement.candidates)
    return False


def assign_resources(
    options: Sequence[RequirementOption], preferred: dict[int, int] | None = None
) -> dict[int, list[int]] | None:
    """Give each requirement `quantity` distinct resources from its free ones, or None if impossible.

    A tiny bipartite matching (augmenting paths): requirements rarely share candidates, but when
    "any stylist" and "any senior stylist" overlap, one person must not be booked twice. *preferred*
    pins a requirement to the resource the customer chose.
    """
    needs = []
    for option in options:
        pool = option.resource_ids
        if preferred and option.requirement_id in preferred:
            pool = tuple(r for r in pool if r == preferred[option.requirement_id])
        needs.extend([(option.requirement_id, pool)] * option.quantity)
    owner: dict[int, int] = {}  # resource -> index into needs

    def place(i: int, visited: set[int]) -> bool:
        for resource in needs[i][1]:
            if resource in visited:
                continue
            visited.add(resource)
            if resource not in owner or place(owner[resource], visited):
                owner[resource] = i
                return True
        return False

    for i in range(len(needs)):
        if not place(i, set()):
            return None
    assignment: dict[int, list[int]] = defaultdict(list)
    for resource, i in sorted(owner.items(), key=lambda item: item[1]):
        assignment[needs[i][0]].append(resource)
    return dict(assignment)


# --- classes and events -------------------------------------------------------------------------


@dataclass(frozen=True)
class CounterState:
    counter_id: int
    zone_id: int | None
    ticket_type_id: int | None
    capacity: int
    held: int
    sold: int

    @property
    def remaining(self) -> int:
        return max(0, self.capacity - self.held - self.sold)


@dataclass(frozen=True)
class TicketTypeInfo:
    ticket_type_id: int
    name: str
    zone_ids: tuple[int, ...]  # empty: every zone
    price: Decimal  # the price in force at `now`
    price_name: str


@dataclass(frozen=True)
class ZoneInfoRow:
    zone_id: int
    name: str
    is_seated: bool


@dataclass(frozen=True)
class SessionInput:
    session_id: int
    offering_id: int
    starts_at: datetime
    ends_at: datetime
    is_cancelled: bool
    sales_open_at: datetime | None
    sales_close_at: datetime | None
    min_notice: timedelta
    horizon: timedelta
    counters: tuple[CounterState, ...]
    zones: tuple[ZoneInfoRow, ...]
    ticket_types: tuple[TicketTypeInfo, ...]
    base_price: Decimal


@dataclass(frozen=True)
class ZoneAvailability:
    zone_id: int
    name: str
    is_seated: bool
    remaining: int


@dataclass(frozen=True)
class TicketAvailability:
    ticket_type_id: int
    name: str
    price: Decimal
    price_name: str
    remaining: int


@dataclass(frozen=True)
class SessionAvailability:
    session_id: int
    offering_id: int
    starts_at: datetime
    ends_at: datetime
    capacity: int
    remaining: int
    bookable: bool
    reason: (
        str | None
    )  # why not bookable: sold_out, not_on_sale_yet, sales_closed, too_late, too_early, cancelled
    zones: tuple[ZoneAvailability, ...]
    ticket_types: tuple[TicketAvailability, ...]
    base_price: Decimal  # per place, for sessions sold without ticket types (classes)

    @property
    def lowest_price(self) -> Decimal:
        prices = [t.price for t in self.ticket_types if t.remaining > 0] or [
            t.price for t in self.ticket_types
        ]
        return min(prices) if prices else self.base_price

    @property
    def reason_text(self) -> str:
        return REASONS.get(self.reason, "") if self.reason else ""


REASONS = {
    "sold_out": "Sold out",
    "not_on_sale_yet": "Not on sale yet",
    "sales_closed": "Sales have closed",
    "too_late": "Too close to the start to book online",
    "too_early": "Not yet open for booking",
    "cancelled": "Cancelled",
}


def session_availability(*, session: SessionInput, now: datetime) -> SessionAvailability:
    """Remaining places of a session in total, per zone and per ticket type, and whether it can be booked now.

    A zone's remaining places are capped by the session's; a ticket type's by its own limit and by
    the zones it admits to.
    """
    total = next((c for c in session.counters if c.zone_id is None and c.ticket_type_id is None), None)
    total_remaining = total.remaining if total else 0
    zone_counters = {c.zone_id: c for c in session.counters if c.zone_id is not None}
    type_counters = {c.ticket_type_id: c for c in session.counters if c.ticket_type_id is not None}

    zones = tuple(
        ZoneAvailability(
            z.zone_id,
            z.name,
            z.is_seated,
            min(total_remaining, zone_counters[z.zone_id].remaining) if z.zone_id in zone_counters else 0,
        )
        for z in session.zones
    )
    zone_remaining = {z.zone_id: z.remaining for z in zones}
    ticket_types = []
    for tt in session.ticket_types:
        if zones:
            admitted = tt.zone_ids or tuple(zone_remaining)
            remaining = sum(zone_remaining.get(z, 0) for z in admitted)
            remaining = min(remaining, total_remaining)
        else:
            remaining = total_remaining
        if tt.ticket_type_id in type_counters:
            remaining = min(remaining, type_counters[tt.ticket_type_id].remaining)
        ticket_types.append(
            TicketAvailability(tt.ticket_type_id, tt.name, tt.price, tt.price_name, remaining)
        )

    reason = None
    if session.is_cancelled:
        reason = "cancelled"
    else:
        reason = sales_window_reason(
            now=now, sales_open_at=session.sales_open_at, sales_close_at=session.sales_close_at
        )
    if reason is None and now + session.min_notice > session.starts_at:
        reason = "too_late"
    if reason is None and session.starts_at > now + session.horizon:
        reason = "too_early"
    if reason is None and total_remaining <= 0:
        reason = "sold_out"
    return SessionAvailability(
        session_id=session.session_id,
        offering_id=session.offering_id,
        starts_at=session.starts_at,
        ends_at=session.ends_at,
        capacity=total.capacity if total else 0,
        remaining=total_remaining,
        bookable=reason is None,
        reason=reason,
        zones=zones,
        ticket_types=tuple(ticket_types),
        base_price=session.base_price,
    )
