"""Appointment availability as customers see it, loaded from the database."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from inventory.models import DateOverride
from inventory.selectors import appointment_slot_list
from tests.inventory import factories as make

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)  # a Monday morning
TUESDAY = date(2026, 6, 2)


def at(hour, minute=0, day=TUESDAY):
    return datetime.combine(day, time(hour, minute)).replace(tzinfo=LONDON)


def starts(slots):
    return [s.starts_at.astimezone(LONDON).strftime("%H:%M") for s in slots]


@pytest.fixture
def salon():
    return make.location()


@pytest.fixture
def ana(salon):
    return make.resource(at=salon, name="Ana", now=NOW)


def tuesday_slots(offering, **kwargs):
    return appointment_slot_list(
        offering=offering, start=at(0), end=at(0) + timedelta(days=1), now=NOW, **kwargs
    )


def test_a_free_day_offers_every_interval_that_fits_working_hours(salon, ana):
    cut = make.appointment(at=salon, needs=[[ana]], minutes=60, interval=30)
    assert starts(tuesday_slots(cut)) == [
        "09:00",
        "09:30",
        "10:00",
        "10:30",
        "11:00",
        "11:30",
        "12:00",
        "12:30",
        "13:00",
        "13:30",
        "14:00",
        "14:30",
        "15:00",
        "15:30",
        "16:00",
    ]


def test_existing_bookings_busy_time_and_blackouts_take_slots_away(salon, ana):
    cut = make.appointment(at=salon, needs=[[ana]], minutes=60, interval=60)
    make.allocation(on=ana, starts_at=at(10), minutes=60, after=15, now=NOW)  # 10:00–11:15 taken
    make.busy(on=ana, starts_at=at(13), minutes=30, now=NOW)  # a dentist appointment in her calendar
    make.blackout(location=salon, starts_at=at(15), ends_at=at(16))  # fire drill for the whole salon
    assert starts(tuesday_slots(cut)) == ["09:00", "12:00", "14:00", "16:00"]


def test_the_buffer_of_a_new_booking_must_not_touch_an_existing_one(salon, ana):
    cut = make.appointment(at=salon, needs=[[ana]], minutes=45, interval=15, after=15)
    make.allocation(on=ana, starts_at=at(11), minutes=60, now=NOW)
    available = starts(tuesday_slots(cut))
    assert "10:00" in available  # 10:00–10:45, buffer to 11:00: just fits
    assert "10:15" not in available  # buffer would run into 11:00


def test_a_date_override_replaces_the_weekly_hours(salon, ana):
    cut = make.appointment(at=salon, needs=[[ana]], minutes=60, interval=60)
    DateOverride.objects.create(resource=ana, date=TUESDAY, start_time=time(18), end_time=time(20))
    assert starts(tuesday_slots(cut)) == ["18:00", "19:00"]
    DateOverride.objects.filter(resource=ana).delete()
    DateOverride.objects.create(resource=ana, date=TUESDAY, is_closed=True)
    assert tuesday_slots(cut) == []


def test_notice_horizon_and_sales_window(salon, ana):
    cut = make.appointment(
        at=salon,
        needs=[[ana]],
        minutes=60,
        interval=60,
        min_notice=timedelta(hours=26),
        horizon=timedelta(days=1, hours=6),
    )
    # now is Mon 09:00 BST: notice pushes the first start to Tue 11:00, the horizon ends Tue 15:00.
    assert starts(tuesday_slots(cut)) == ["11:00", "12:00", "13:00", "14:00", "15:00"]
    cut.sales_close_at = NOW
    cut.save()
    assert tuesday_slots(cut) == []


def test_a_daily_limit_closes_a_resource_for_the_rest_of_that_day(salon, ana):
    colour = make.appointment(at=salon, needs=[[ana]], minutes=60, interval=60, daily_limit_per_resource=1)
    make.allocation(on=ana, starts_at=at(9), minutes=60, offering=colour, now=NOW)
    assert tuesday_slots(colour) == []
    other = make.appointment(at=salon, needs=[[ana]], minutes=60, interval=60)
    assert starts(tuesday_slots(other))[0] == "10:00"  # the limit is per offering


def test_a_pool_of_tables_stays_bookable_until_every_table_is_taken(salon):
    tables = make.resource(at=salon, name="Massage tables", count=4, kind="equipment", now=NOW)
    massage = make.appointment(at=salon, needs=[[tables]], minutes=60, interval=60)
    for unit in (1, 2, 3):
        make.allocation(on=tables, starts_at=at(10), unit_number=unit, now=NOW)
    assert "10:00" in starts(tuesday_slots(massage))
    make.allocation(on=tables, starts_at=at(10), unit_number=4, now=NOW)
    assert "10:00" not in starts(tuesday_slots(massage))


def test_stylist_plus_room_plus_laser(salon, ana):
    bob = make.resource(at=salon, name="Bob", now=NOW)
    room = make.resource(at=salon, name="Room 1", kind="room", now=NOW)
    laser = make.resource(at=salon, name="Laser", kind="equipment", now=NOW)
    treatment = make.appointment(at=salon, needs=[[ana, bob], [room], [laser]], minutes=60, interval=60)
    make.allocation(on=laser, starts_at=at(12), now=NOW)
    make.allocation(on=ana, starts_at=at(14), now=NOW)
    slots = {s.starts_at.astimezone(LONDON).strftime("%H:%M"): s for s in tuesday_slots(treatment)}
    assert "12:00" not in slots  # the laser is the bottleneck
    assert slots["14:00"].options[0].resource_ids == (bob.pk,)  # only Bob can do 14:00
    assert slots["09:00"].options[0].resource_ids == (ana.pk, bob.pk)


def test_asking_for_one_stylist_narrows_the_slots_to_theirs(salon, ana):
    bob = make.resource(at=salon, name="Bob", now=NOW)
    cut = make.appointment(at=salon, needs=[[ana, bob]], minutes=60, interval=60)
    make.allocation(on=ana, starts_at=at(9), now=NOW)
    assert "09:00" in starts(tuesday_slots(cut))
    assert "09:00" not in starts(tuesday_slots(cut, resource_id=ana.pk))


def test_a_room_taken_by_a_class_is_not_offered_for_appointments(salon, ana):
    room = make.resource(at=salon, name="Studio", kind="room", now=NOW)
    yoga = make.class_offering(at=salon)
    make.session(offering=yoga, starts_at=at(10), capacity=10, resources=[room], now=NOW)
    facial = make.appointment(at=salon, needs=[[room]], minutes=60, interval=60)
    assert "10:00" not in starts(tuesday_slots(facial))


def test_the_loading_is_a_fixed_handful_of_queries(salon, ana, django_assert_max_num_queries):
    cut = make.appointment(at=salon, needs=[[ana]])
    for hour in range(9, 16):
        make.allocation(on=ana, starts_at=at(hour, day=TUESDAY + timedelta(days=1)), now=NOW)
    with django_assert_max_num_queries(10):
        appointment_slot_list(offering=cut, start=NOW, end=NOW + timedelta(days=30), now=NOW)
