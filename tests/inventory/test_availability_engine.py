"""The pure availability engine: right wall-clock times in every zone, and never a slot on taken time."""

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory.availability import (
    AppointmentRules,
    Requirement,
    ResourceCalendar,
    appointment_slots,
    assign_resources,
    slot_grid,
    to_ts,
    wall_bound,
)

LONDON = ZoneInfo("Europe/London")
SYDNEY = ZoneInfo("Australia/Sydney")
KOLKATA = ZoneInfo("Asia/Kolkata")
ADELAIDE = ZoneInfo("Australia/Adelaide")
NEW_YORK = ZoneInfo("America/New_York")
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)

# DST changes in 2026: London 29 Mar (forward) and 25 Oct (back); New York 8 Mar and 1 Nov;
# Sydney and Adelaide (southern hemisphere) 5 Apr (back) and 4 Oct (forward). Kolkata has none.
TRANSITION_DAYS = {
    "Europe/London": [date(2026, 3, 29), date(2026, 10, 25)],
    "America/New_York": [date(2026, 3, 8), date(2026, 11, 1)],
    "Australia/Sydney": [date(2026, 4, 5), date(2026, 10, 4)],
    "Australia/Adelaide": [date(2026, 4, 5), date(2026, 10, 4)],
    "Asia/Kolkata": [date(2026, 6, 1)],
}


def rules(zone, *, minutes=60, interval=30, before=0, after=0, notice=0, daily_limit=None, needs=((1,),)):
    return AppointmentRules(
        offering_id=1,
        zone=zone,
        duration=timedelta(minutes=minutes),
        interval=timedelta(minutes=interval),
        buffer_before=timedelta(minutes=before),
        buffer_after=timedelta(minutes=after),
        min_notice=timedelta(minutes=notice),
        horizon=timedelta(days=3650),
        sales_open_at=None,
        sales_close_at=None,
        daily_limit=daily_limit,
        requirements=tuple(Requirement(n + 1, f"need {n + 1}", 1, tuple(c)) for n, c in enumerate(needs)),
    )


def calendar(resource_id, zone, hours, *, units=1, blocked=(), allocations=None, overrides=None):
    return ResourceCalendar(
        resource_id=resource_id,
        zone=zone,
        units=list(range(resource_id * 10, resource_id * 10 + units)),
        weekly=defaultdict(list, hours),
        overrides=overrides or {},
        blocked=list(blocked),
        unit_blocked=allocations or {},
    )


def every_day(*periods):
    return {d: list(periods) for d in range(7)}


def local_labels(slots, zone):
    return [s.starts_at.astimezone(zone).strftime("%H:%M %Z") for s in slots]


def day_window(day, zone):
    start = datetime.combine(day, time(0)).replace(tzinfo=zone)
    return start, datetime.combine(day + timedelta(days=1), time(0)).replace(tzinfo=zone)


# --- DST on purpose -----------------------------------------------------------------------------


def test_spring_forward_skips_the_hour_that_does_not_exist():
    hours = every_day((time(0), time(4)))
    start, end = day_window(date(2026, 3, 29), LONDON)
    slots = appointment_slots(
        rules=rules(LONDON, minutes=30, interval=30),
        calendars={1: calendar(1, LONDON, hours)},
        start=start,
        end=end,
        now=LONG_AGO,
    )
    assert local_labels(slots, LONDON) == [
        "00:00 GMT",
        "00:30 GMT",
        "02:00 BST",
        "02:30 BST",
        "03:00 BST",
        "03:30 BST",
    ]


def test_fall_back_offers_the_repeated_hour_twice_as_two_real_instants():
    hours = every_day((time(0), time(3)))
    start, end = day_window(date(2026, 10, 25), LONDON)
    slots = appointment_slots(
        rules=rules(LONDON, minutes=60, interval=60),
        calendars={1: calendar(1, LONDON, hours)},
        start=start,
        end=end,
        now=LONG_AGO,
    )
    assert local_labels(slots, LONDON) == ["00:00 BST", "01:00 BST", "01:00 GMT", "02:00 GMT"]
    assert len({s.starts_at for s in slots}) == 4  # four different hours of real time


@pytest.mark.parametrize("zone_name", ["Africa/Cairo", "Europe/London", "America/Santiago"])
def test_every_time_offered_on_a_fall_back_day_can_be_taken(zone_name):
    # Taking a time asks the engine again for just that instant (inventory.capacity). A fall-back day
    # lists both instants of each repeated time side by side, so its grid is not in time order; the
    # second 23:00 in Cairo (29 October 2026) was offered and then refused as "just taken".
    zone = ZoneInfo(zone_name)
    engine = rules(zone, minutes=15, interval=15)
    calendars = {1: calendar(1, zone, every_day((time(0), time(23, 59))))}
    for day in (date(2026, 10, 29), date(2026, 10, 25), date(2026, 4, 4)):
        start, end = day_window(day, zone)
        offered = appointment_slots(rules=engine, calendars=calendars, start=start, end=end, now=LONG_AGO)
        for slot in offered:
            [taken] = appointment_slots(
                rules=engine,
                calendars=calendars,
                start=slot.starts_at,
                end=slot.starts_at + timedelta(seconds=1),
                now=LONG_AGO,
            )
            assert taken.starts_at == slot.starts_at, slot.starts_at.astimezone(zone)


def test_hours_ending_where_the_clocks_go_back_end_the_first_time_they_get_there():
    # Adelaide, 5 April 2026: at 03:00 ACDT the clocks go back to 02:00 ACST. Hours "until 02:00"
    # end when the clocks first reach 02:00; after that they never show a time before 02:00 again.
    hours = every_day((time(0), time(2)))
    start, end = day_window(date(2026, 4, 5), ADELAIDE)
    slots = appointment_slots(
        rules=rules(ADELAIDE, minutes=60, interval=60),
        calendars={1: calendar(1, ADELAIDE, hours)},
        start=start,
        end=end,
        now=LONG_AGO,
    )
    assert local_labels(slots, ADELAIDE) == ["00:00 ACDT", "01:00 ACDT"]


@pytest.mark.parametrize(
    ("zone", "day", "expected_utc"),
    [
        (SYDNEY, date(2026, 10, 3), "2026-10-02 23:00"),  # AEST, +10
        (SYDNEY, date(2026, 10, 4), "2026-10-03 22:00"),  # AEDT from 02:00 that night, +11
        (SYDNEY, date(2026, 4, 5), "2026-04-04 23:00"),  # back to AEST in the (southern) autumn
        (ADELAIDE, date(2026, 10, 3), "2026-10-02 23:30"),  # ACST, +9:30
        (ADELAIDE, date(2026, 10, 4), "2026-10-03 22:30"),  # ACDT, +10:30
        (KOLKATA, date(2026, 3, 29), "2026-03-29 03:30"),  # IST, +5:30, no DST at all
        (NEW_YORK, date(2026, 3, 8), "2026-03-08 13:00"),  # EDT from that morning, -4
    ],
)
def test_a_nine_oclock_opening_is_nine_oclock_local_whatever_the_offset(zone, day, expected_utc):
    start, end = day_window(day, zone)
    slots = appointment_slots(
        rules=rules(zone),
        calendars={1: calendar(1, zone, every_day((time(9), time(17))))},
        start=start,
        end=end,
        now=LONG_AGO,
    )
    assert slots[0].starts_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") == expected_utc
    assert slots[0].starts_at.astimezone(zone).strftime("%H:%M") == "09:00"
    assert slots[-1].starts_at.astimezone(zone).strftime("%H:%M") == "16:00"


def test_a_period_that_starts_inside_the_gap_starts_at_the_jump():
    # 01:30 does not exist in London on 29 March 2026: the clocks go from 01:00 GMT to 02:00 BST.
    assert datetime.fromtimestamp(
        wall_bound(date(2026, 3, 29), time(1, 30), LONDON, is_end=False), UTC
    ) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_a_period_ending_inside_the_fold_ends_at_its_second_occurrence():
    # 01:30 happens twice in London on 25 October 2026; a shift until 01:30 works both of them.
    end = wall_bound(date(2026, 10, 25), time(1, 30), LONDON, is_end=True)
    assert datetime.fromtimestamp(end, UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 01:30 GMT


def test_the_grid_is_wall_clock_quarter_hours_in_a_half_hour_zone():
    start, end = day_window(date(2026, 6, 1), KOLKATA)
    grid = slot_grid(to_ts(start), to_ts(end), KOLKATA, timedelta(minutes=15))
    assert len(grid) == 96
    assert {datetime.fromtimestamp(t, KOLKATA).minute for t in grid} == {0, 15, 30, 45}


# --- rules --------------------------------------------------------------------------------------


def test_buffers_keep_a_slot_clear_of_existing_time_on_both_sides():
    day = date(2026, 6, 2)
    taken = (
        to_ts(datetime(2026, 6, 2, 12, 0, tzinfo=LONDON)),
        to_ts(datetime(2026, 6, 2, 13, 0, tzinfo=LONDON)),
    )
    start, end = day_window(day, LONDON)
    slots = appointment_slots(
        rules=rules(LONDON, minutes=60, interval=30, before=15, after=15),
        calendars={1: calendar(1, LONDON, every_day((time(9), time(17))), allocations={10: [taken]})},
        start=start,
        end=end,
        now=LONG_AGO,
    )
    labels = [s.starts_at.astimezone(LONDON).strftime("%H:%M") for s in slots]
    assert "10:30" in labels  # 10:15–11:45 buffered, clear of 12:00
    assert "11:00" not in labels  # its buffer after would touch 12:00–13:00 … 11:00–12:15 overlaps
    assert "13:00" not in labels and "13:30" in labels  # 13:15 buffered start is clear again


def test_a_pool_is_free_while_any_unit_is():
    day = date(2026, 6, 2)
    ten = datetime(2026, 6, 2, 10, 0, tzinfo=LONDON)
    busy_hour = [(to_ts(ten), to_ts(ten + timedelta(hours=1)))]
    start, end = day_window(day, LONDON)

    def slots_at_ten(units_taken):
        allocations = {10 + u: busy_hour for u in range(units_taken)}
        found = appointment_slots(
            rules=rules(LONDON),
            calendars={
                1: calendar(1, LONDON, every_day((time(9), time(17))), units=4, allocations=allocations)
            },
            start=start,
            end=end,
            now=LONG_AGO,
        )
        return any(s.starts_at == ten for s in found)

    assert slots_at_ten(3) is True
    assert slots_at_ten(4) is False


def test_a_slot_needs_every_requirement_at_once():
    day = date(2026, 6, 2)
    start, end = day_window(day, LONDON)
    stylist = calendar(1, LONDON, every_day((time(9), time(17))))
    room = calendar(2, LONDON, every_day((time(13), time(15))))
    slots = appointment_slots(
        rules=rules(LONDON, needs=((1,), (2,))),
        calendars={1: stylist, 2: room},
        start=start,
        end=end,
        now=LONG_AGO,
    )
    assert [s.starts_at.astimezone(LONDON).strftime("%H:%M") for s in slots] == ["13:00", "13:30", "14:00"]
    assert slots[0].resources_for(1) == (1,) and slots[0].resources_for(2) == (2,)


def test_one_person_is_never_counted_for_two_requirements():
    # "any stylist" and "any senior stylist" share Ann; with only Ann free, nothing can be booked.
    day = date(2026, 6, 2)
    start, end = day_window(day, LONDON)
    ann = calendar(1, LONDON, every_day((time(9), time(17))))
    bob = calendar(2, LONDON, every_day((time(13), time(17))))
    slots = appointment_slots(
        rules=rules(LONDON, needs=((1, 2), (1,))),
        calendars={1: ann, 2: bob},
        start=start,
        end=end,
        now=LONG_AGO,
    )
    labels = [s.starts_at.astimezone(LONDON).strftime("%H:%M") for s in slots]
    assert labels[0] == "13:00"  # before 13:00 only Ann works
    assert assign_resources(slots[0].options) == {1: [2], 2: [1]}


def test_minimum_notice_and_the_closed_override():
    now = datetime(2026, 6, 2, 11, 10, tzinfo=LONDON)
    start, end = day_window(date(2026, 6, 2), LONDON)
    slots = appointment_slots(
        rules=rules(LONDON, notice=60),
        calendars={1: calendar(1, LONDON, every_day((time(9), time(17))))},
        start=start,
        end=end + timedelta(days=1),
        now=now,
    )
    assert slots[0].starts_at.astimezone(LONDON).strftime("%H:%M") == "12:30"  # first grid time after 12:10
    closed = calendar(1, LONDON, every_day((time(9), time(17))), overrides={date(2026, 6, 3): []})
    next_day = appointment_slots(
        rules=rules(LONDON), calendars={1: closed}, start=end, end=end + timedelta(days=1), now=now
    )
    assert next_day == []


# --- properties ---------------------------------------------------------------------------------

zones = st.sampled_from(sorted(TRANSITION_DAYS))


@st.composite
def scenarios(draw):
    zone_name = draw(zones)
    zone = ZoneInfo(zone_name)
    day = draw(st.sampled_from(TRANSITION_DAYS[zone_name])) + timedelta(days=draw(st.integers(-1, 1)))
    interval = draw(st.sampled_from([15, 20, 30, 60]))
    minutes = draw(st.sampled_from([15, 30, 45, 60, 90, 120]))
    before, after = draw(st.sampled_from([0, 5, 15])), draw(st.sampled_from([0, 10, 30]))
    hours = {}
    for weekday in range(7):
        cuts = sorted(draw(st.sets(st.integers(0, 47), max_size=4)))
        hours[weekday] = [
            (time(a // 2, 30 * (a % 2)), time(b // 2, 30 * (b % 2)))
            for a, b in zip(cuts[::2], cuts[1::2], strict=False)
        ]
    base = to_ts(datetime.combine(day, time(0)).replace(tzinfo=zone))

    def spans(n):
        out = []
        for _ in range(n):
            s = base + draw(st.integers(-6, 30)) * 1800
            out.append((s, s + draw(st.integers(1, 8)) * 900))
        return out

    units = draw(st.integers(1, 2))
    cal = calendar(
        1,
        zone,
        hours,
        units=units,
        blocked=spans(draw(st.integers(0, 4))),
        allocations={10 + u: spans(draw(st.integers(0, 4))) for u in range(units)},
    )
    return zone, day, rules(zone, minutes=minutes, interval=interval, before=before, after=after), cal


def period_by_scanning(day, s, e, zone):
    """A working period as real time, found by watching the clock every five minutes.

    It starts the first time the clock shows *s* or later on *day*, and ends after the last time it
    shows a time before *e* (so hours that meet a DST jump or fold stay one continuous stretch).
    Every boundary here is a multiple of five minutes, so the scan is exact.
    """
    first = to_ts(datetime.combine(day, time(0)).replace(tzinfo=UTC)) - 16 * 3600
    start = end = None
    for ts in range(first, first + 56 * 3600, 300):
        local = datetime.fromtimestamp(ts, zone)
        if local.date() != day:
            continue
        if start is None and local.time() >= s:
            start = ts
        if local.time() < e:
            end = ts + 300
    if start is None or end is None or end <= start:
        return None
    return start, end


def oracle(zone, day, r, cal):
    """Brute force: every wall-clock grid time of the day, checked against every rule directly."""
    periods = [p for s, e in cal.weekly.get(day.weekday(), []) if (p := period_by_scanning(day, s, e, zone))]
    expected = set()
    step = int(r.interval.total_seconds() // 60)
    for minute in range(0, 24 * 60, step):
        naive = datetime.combine(day, time(minute // 60, minute % 60))
        for fold in (0, 1):
            local = naive.replace(tzinfo=zone, fold=fold)
            if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
                continue  # in the gap: no such time
            t = local.astimezone(UTC)  # arithmetic on aware local times would be wall-clock arithmetic
            begins, ends = to_ts(t), to_ts(t + r.duration)
            inside = any(s <= begins and ends <= e for s, e in periods)
            lo = to_ts(t - r.buffer_before)
            hi = to_ts(t + r.duration + r.buffer_after)
            free_unit = any(
                all(not (s < hi and lo < e) for s, e in [*cal.blocked, *cal.unit_blocked.get(u, [])])
                for u in cal.units
            )
            if inside and free_unit:
                expected.add(t)
    return expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_property_slots_are_exactly_the_free_working_times(scenario):
    zone, day, r, cal = scenario
    start, end = day_window(day, zone)
    slots = appointment_slots(rules=r, calendars={1: cal}, start=start, end=end, now=LONG_AGO)

    assert {s.starts_at for s in slots} == oracle(zone, day, r, cal)
    for slot in slots:
        lo, hi = to_ts(slot.starts_at - r.buffer_before), to_ts(slot.ends_at + r.buffer_after)
        assert not any(s < hi and lo < e for s, e in cal.blocked), "slot overlaps busy time or a blackout"
        assert any(not any(s < hi and lo < e for s, e in cal.unit_blocked.get(u, [])) for u in cal.units), (
            "slot overlaps an allocation on every unit"
        )
        assert slot.starts_at.astimezone(zone).date() == day
