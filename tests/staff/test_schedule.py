"""The staff day schedule: each resource's bookings, sessions, busy time and off hours, in the venue's
time, laid out by real elapsed time (so a day the clocks change has 23 or 25 hours), in a fixed number
of queries, for staff who may see bookings only."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from booking.services import booking_cancel, booking_confirm
from core.roles import FRONT_DESK
from inventory.models import ResourceRequirement
from inventory.services import busy_block_upsert
from staff.schedule import day_schedule
from tests.booking.helpers import NOW, TUESDAY, at, hold_places, hold_slot
from tests.inventory import factories as make

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
SPRING_FORWARD = date(2026, 3, 29)  # 01:00 GMT becomes 02:00 BST
FALL_BACK = date(2026, 10, 25)  # 02:00 BST becomes 01:00 GMT


@pytest.fixture
def staff(client):
    """A staff login that may look at bookings and nothing else."""
    user = get_user_model().objects.create_user("sam", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="booking", codename="view_booking")
    )
    client.force_login(user)
    return user


def page(client, location, day: date, **extra):
    return client.get(reverse("staff:schedule"), {"location": location.pk, "date": day.isoformat(), **extra})


def row_html(html: str, resource) -> str:
    """The lanes of one resource's row (the page marks each lane with its resource id)."""
    lanes = [
        chunk
        for chunk in html.split('<div class="schedule-row')
        if chunk.split(">", 1)[0].endswith(f'data-resource="{resource.pk}"')
    ]
    assert lanes, f"no row for {resource}"
    return "".join(lanes)


def blocks_of(schedule, resource):
    row = next(r for r in schedule.rows if r.resource_id == resource.pk)
    return [block for lane in row.lanes for block in lane.blocks]


def confirmed_cut(salon, hour, stylist, minute=0):
    requirement = ResourceRequirement.objects.get(offering=salon["cut"])
    return booking_confirm(
        booking=hold_slot(salon["cut"], at(hour, minute), preferred={requirement.pk: stylist.pk}), now=NOW
    )


def test_a_booking_shows_in_its_stylists_row_at_its_local_time_and_links_to_its_admin_page(
    client, staff, salon
):
    booking = confirmed_cut(salon, 10, salon["ana"])

    response = page(client, salon["place"], TUESDAY)

    assert response.status_code == 200
    schedule = response.context["schedule"]
    assert schedule.zone_name == "Europe/London"
    assert [h.label for h in schedule.hours][:2] == ["09:00", "10:00"]  # Ana and Bob work 09:00-17:00
    (block,) = blocks_of(schedule, salon["ana"])
    assert block.url == reverse("admin:booking_booking_change", args=[booking.pk])
    assert (block.starts_at.hour, block.ends_at.hour) == (10, 11)
    assert block.starts_at.utcoffset() == timedelta(hours=1)  # shown in BST, not UTC
    # 09:00-17:00 shown; the 15 minutes' buffer after the cut is part of the block, drawn lighter.
    assert (block.left, block.width) == (12.5, 15.625)
    assert block.after == 20.0 and block.before == 0
    assert blocks_of(schedule, salon["bob"]) == []
    ana = row_html(response.content.decode(), salon["ana"])
    assert f'href="/admin/booking/booking/{booking.pk}/change/"' in ana
    assert "10:00–11:00" in ana and booking.reference in ana and booking.customer.name in ana
    assert booking.reference not in row_html(response.content.decode(), salon["bob"])


def test_busy_time_from_a_calendar_shows_grey_with_its_summary(client, staff, salon):
    busy_block_upsert(
        resource=salon["bob"],
        source="calendar:7",
        external_id="abc",
        starts_at=at(13),
        ends_at=at(14, 30),
        summary="Dentist",
        now=NOW,
    )

    response = page(client, salon["place"], TUESDAY)

    bob = row_html(response.content.decode(), salon["bob"])
    assert "shade-busy" in bob and "Dentist" in bob and "13:00–14:30" in bob
    assert "Dentist" not in row_html(response.content.decode(), salon["ana"])


def test_a_cancelled_booking_is_not_shown(client, staff, salon):
    kept = confirmed_cut(salon, 10, salon["ana"])
    gone = confirmed_cut(salon, 12, salon["ana"])
    booking_cancel(booking=gone, now=NOW, by_customer=False, reason="Ill")

    html = page(client, salon["place"], TUESDAY).content.decode()

    assert kept.reference in html
    assert gone.reference not in html


def test_a_class_session_shows_in_its_instructors_and_rooms_rows_with_places_sold(client, staff, salon):
    pilates = make.class_offering(at=salon["place"], name="Pilates", price="0.00")
    session = make.session(
        offering=pilates, starts_at=at(17), capacity=8, resources=[salon["ana"], salon["room"]], now=NOW
    )
    hold_places(pilates, session, 3)  # free: confirmed at once

    response = page(client, salon["place"], TUESDAY)

    schedule = response.context["schedule"]
    assert schedule.hours[-1].label == "17:00"  # the class runs past the working hours: shown till 18:00
    assert f"{schedule.ends_at:%H:%M}" == "18:00"
    for resource, other in ((salon["ana"], "Room"), (salon["room"], "Ana")):
        (block,) = blocks_of(schedule, resource)
        assert block.kind == "session" and (block.sold, block.capacity) == (3, 8)
        assert block.with_resources == (other,)
        html = row_html(response.content.decode(), resource)
        assert f'href="/admin/inventory/session/{session.pk}/change/"' in html
        assert "Pilates" in html and "3/8 sold" in html and f"with {other}" in html
    assert blocks_of(schedule, salon["bob"]) == []


@pytest.mark.parametrize(
    ("day", "hours", "labels", "ten_oclock_after"),
    [
        # 00:00 GMT to 10:00 BST is 9 real hours of a 23-hour day; 01:00 never happens.
        (SPRING_FORWARD, 23, ["00:00 GMT", "02:00 BST", "03:00 BST"], 9),
        # 00:00 BST to 10:00 GMT is 11 real hours of a 25-hour day; 01:00 happens twice.
        (FALL_BACK, 25, ["00:00 BST", "01:00 BST", "01:00 GMT", "02:00 GMT"], 11),
    ],
)
def test_a_london_day_when_the_clocks_change_has_its_real_number_of_hours(
    client, staff, day, hours, labels, ten_oclock_after
):
    now = datetime.combine(day - timedelta(days=5), time(12), tzinfo=UTC)
    place = make.location(name="Clock Tower")
    cat = make.resource(at=place, name="Cat", now=now)
    trim = make.appointment(at=place, needs=[[cat]], name="Trim", minutes=60, price="0.00")
    booking = hold_slot(trim, datetime.combine(day, time(10), tzinfo=LONDON), now=now)

    response = page(client, place, day, whole_day="on")

    schedule = response.context["schedule"]
    assert schedule.day_hours == hours
    assert len(schedule.hours) == hours
    assert [h.label for h in schedule.hours][: len(labels)] == labels
    assert [h.left for h in schedule.hours] == [round(100 * n / hours, 4) for n in range(hours)]
    (block,) = blocks_of(schedule, cat)
    assert block.url == reverse("admin:booking_booking_change", args=[booking.pk])
    assert block.left == round(100 * ten_oclock_after / hours, 4)
    assert block.width == round(100 / hours, 4)
    assert f"this day has {hours} hours" in response.content.decode()
    # Working hours 09:00-17:00 local: off time before and after, measured in real hours.
    row = next(r for r in schedule.rows if r.resource_id == cat.pk)
    off = [(s.left, s.width) for s in row.shades if s.kind == "off"]
    assert off == [
        (0.0, round(100 * (ten_oclock_after - 1) / hours, 4)),
        (
            round(100 * (ten_oclock_after + 7) / hours, 4),
            round(100 * (hours - ten_oclock_after - 7) / hours, 4),
        ),
    ]

    # Without "whole day" the working hours are shown: eight ordinary hours, one zone abbreviation.
    working = day_schedule(location=place, day=day)
    assert [h.label for h in working.hours] == [f"{h:02d}:00" for h in range(9, 17)]
    assert blocks_of(working, cat)[0].left == 12.5


def test_without_working_hours_or_bookings_the_day_shows_seven_to_ten(client, staff):
    place = make.location(name="Empty")
    make.resource(at=place, name="Nobody", hours={}, now=NOW)

    schedule = day_schedule(location=place, day=TUESDAY)

    assert (schedule.hours[0].label, schedule.hours[-1].label, len(schedule.hours)) == ("07:00", "21:00", 15)
    assert schedule.rows[0].working_label == "Not working today"
    assert [(s.kind, s.left, s.width) for s in schedule.rows[0].shades] == [("off", 0.0, 100.0)]


def test_by_default_the_first_location_today_in_its_own_time_zone(client, staff, salon):
    make.location(name="Zebra Rooms", time_zone="America/New_York")

    with time_machine.travel(datetime(2026, 6, 1, 23, 30, tzinfo=UTC), tick=False):  # Tuesday in London
        response = client.get(reverse("staff:schedule"))

    schedule = response.context["schedule"]
    assert (schedule.location, schedule.day) == (salon["place"], TUESDAY)
    assert response.context["is_today"]


def test_staff_without_view_booking_are_refused_and_strangers_sent_to_log_in(client, salon):
    url = f"{reverse('staff:schedule')}?location={salon['place'].pk}"
    assert client.get(url).status_code == 302
    assert client.get(url)["Location"].startswith("/admin/login/")

    client.force_login(get_user_model().objects.create_user("nobody", password="pw", is_staff=True))
    assert client.get(url).status_code == 403

    desk = get_user_model().objects.create_user("desk", password="pw", is_staff=True)
    desk.groups.add(Group.objects.get(name=FRONT_DESK))
    client.force_login(desk)
    assert client.get(url).status_code == 200


def test_a_wrong_date_is_explained(client, staff, salon):
    response = client.get(reverse("staff:schedule"), {"location": salon["place"].pk, "date": "2026-02-30"})

    assert response.status_code == 400
    assert "Enter a valid date" in response.content.decode()


def test_the_page_takes_the_same_few_queries_for_two_or_ten_bookings(
    client, staff, salon, django_assert_max_num_queries
):
    pilates = make.class_offering(at=salon["place"], name="Pilates", price="0.00")
    make.session(offering=pilates, starts_at=at(18), capacity=8, resources=[salon["room"]], now=NOW)
    busy_block_upsert(
        resource=salon["bob"], source="manual", external_id="x", starts_at=at(9), ends_at=at(10), now=NOW
    )

    def queries_with(starts):
        for hour, minute in starts:  # a cut takes 75 minutes with its buffer
            confirmed_cut(salon, hour, salon["ana"], minute)
            confirmed_cut(salon, hour, salon["bob"], minute)
        with django_assert_max_num_queries(15), CaptureQueriesContext(connection) as queries:
            response = page(client, salon["place"], TUESDAY)
        assert response.status_code == 200
        return len(queries), response.context["schedule"].block_count

    few, shown = queries_with([(10, 0)])
    assert shown == 2 + 1
    many, shown = queries_with([(11, 30), (13, 0), (14, 30), (16, 0)])
    assert shown == 10 + 1
    assert many == few
