"""The staff Reports page: figures checked against a small business whose week we know by heart.

Everything is made through the services customers, staff and payments use. The week of Monday 1 June
2026 (Europe/London):

* Yoga (12.00 GBP, Studio): Tue 2 Jun 18:00 for 10 places, Thu 4 Jun 18:00 for 2, Tue 9 Jun 18:00.
  Made Mon 1 Jun: B1 2 places paid 24; B2 1 place paid 12, cancelled and refunded 12; B3 3 places never
  paid (expired); B4 1 place paid 12, a no-show; B8 1 place still held. Made Tue 2 Jun: B5 2 places on
  9 Jun paid 10 of 24; B6 2 places on 4 Jun paid 24 (sells it out); then two waitlist requests (2 + 1).
* Cut (40.00 GBP, 60 min + 15 min buffer, Salon, Ana or Bob): made Mon 1 Jun: A1 Ana Tue 10:00 paid
  40; A2 Ana Tue 12:00 paid 40, cancelled, 20 refunded. Made Tue 2 Jun: A3 Bob Wed 10:00 paid 20.
* Spin (20.00 EUR, Gym): Fri 5 Jun 09:00 for 5 places; B7 made Tue 2 Jun, 1 place paid 15.

Ana works 09–17 every day, Bob 09–13 Monday to Friday, the Room (two units) 09–17 every day.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from booking.models import Booking, BookingStatus
from booking.services import (
    booking_cancel,
    booking_confirm,
    booking_expire,
    booking_mark_no_show,
    booking_money_update,
    waitlist_join,
)
from core.roles import MANAGER
from inventory.models import Resource
from staff import reports
from staff.reports import ReportFilters
from tests.booking.helpers import NOW, at, hold_places, hold_slot, someone
from tests.inventory import factories as make

pytestmark = pytest.mark.django_db

TZ = "Europe/London"
URL = "/staff/reports/"
MON, TUE, WED, THU, FRI = (date(2026, 6, d) for d in range(1, 6))
TUE_NOW = NOW + timedelta(days=1)  # Tue 2 Jun 08:00 London
WEEK = ReportFilters(start_date=MON, end_date=date(2026, 6, 7), time_zone=TZ)
D = Decimal


def money(booking: Booking, paid: str, refunded: str = "0", *, now=NOW) -> Booking:
    return booking_money_update(booking=booking, paid=D(paid), refunded=D(refunded), now=now)


def sold(booking: Booking, paid: str, *, now=NOW) -> Booking:
    return money(booking_confirm(booking=booking, now=now), paid, now=now)


@pytest.fixture
def shop(flexible):
    studio, salon, gym = (make.location(name=n) for n in ("Studio", "Salon", "Gym"))
    yoga = make.class_offering(
        at=studio, name="Yoga", price="12.00", waitlist_enabled=True, cancellation_policy=flexible
    )
    tue = make.session(offering=yoga, starts_at=at(18), capacity=10, now=NOW)
    thu = make.session(offering=yoga, starts_at=at(18, day=THU), capacity=2, now=NOW)
    next_tue = make.session(
        offering=yoga, starts_at=at(18, day=TUE + timedelta(days=7)), capacity=10, now=NOW
    )
    ana = make.resource(at=salon, name="Ana", now=NOW)
    bob = make.resource(at=salon, name="Bob", hours={d: [(time(9), time(13))] for d in range(5)}, now=NOW)
    make.resource(at=salon, name="Room", kind=Resource.Kind.ROOM, count=2, now=NOW)
    cut = make.appointment(at=salon, needs=[[ana, bob]], name="Cut", minutes=60, after=15, price="40.00")
    stylist = cut.requirements.get().pk
    spin = make.class_offering(at=gym, name="Spin", price="20.00")
    spin.currency = "EUR"
    spin.save(update_fields=["currency"])
    fri = make.session(offering=spin, starts_at=at(9, day=FRI), capacity=5, now=NOW)

    sold(hold_places(yoga, tue, 2), "24.00")  # B1
    b2 = sold(hold_places(yoga, tue, 1), "12.00")
    booking_cancel(booking=b2, now=NOW + timedelta(hours=1), by_customer=False)
    money(b2, "12.00", "12.00", now=NOW + timedelta(hours=1))
    b3 = hold_places(yoga, tue, 3)
    booking_expire(booking_id=b3.pk, now=NOW + timedelta(hours=1))
    b4 = sold(hold_places(yoga, tue, 1), "12.00")
    booking_mark_no_show(booking=b4, now=at(19))
    hold_places(yoga, tue, 1, now=NOW + timedelta(hours=2))  # B8, still held
    sold(hold_slot(cut, at(10), preferred={stylist: ana.pk}), "40.00")  # A1
    a2 = sold(hold_slot(cut, at(12), preferred={stylist: ana.pk}), "40.00")
    booking_cancel(booking=a2, now=NOW + timedelta(hours=1), by_customer=False)
    money(a2, "40.00", "20.00", now=NOW + timedelta(hours=1))

    sold(hold_places(yoga, next_tue, 2, now=TUE_NOW), "10.00", now=TUE_NOW)  # B5
    sold(hold_places(yoga, thu, 2, now=TUE_NOW), "24.00", now=TUE_NOW)  # B6
    sold(hold_slot(cut, at(10, day=WED), preferred={stylist: bob.pk}, now=TUE_NOW), "20.00", now=TUE_NOW)
    sold(hold_places(spin, fri, 1, now=TUE_NOW), "15.00", now=TUE_NOW)  # B7
    waitlist_join(offering=yoga, session=thu, customer=someone(), quantity=2, now=TUE_NOW)
    waitlist_join(
        offering=yoga, session=thu, customer=someone(), quantity=1, now=TUE_NOW + timedelta(hours=1)
    )

    assert Booking.objects.filter(status=BookingStatus.REFUNDED).count() == 1  # B2 fully refunded
    return {
        "studio": studio,
        "salon": salon,
        "gym": gym,
        "yoga": yoga,
        "cut": cut,
        "spin": spin,
        "tue": tue,
        "thu": thu,
        "fri": fri,
        "next_tue": next_tue,
    }


def by_period(rows):
    return {r.period: r for r in rows}


# --- bookings -----------------------------------------------------------------------------------


def test_bookings_made_count_by_booking_date_and_outcomes_by_start(shop):
    report = reports.report_bookings(filters=WEEK)
    rows = by_period(report.rows)

    assert len(report.rows) == 7
    assert (rows[MON].made, rows[MON].confirmed) == (7, 5)  # B1-B4, B8, A1, A2; B3 and B8 never confirmed
    assert (rows[TUE].made, rows[TUE].confirmed) == (4, 4)  # B5, B6, A3, B7
    # By start: B1 B2 B4 A1 A2 on Tuesday, A3 Wednesday, B6 Thursday, B7 Friday; B5 is next week.
    assert [(rows[d].starting, rows[d].cancelled, rows[d].no_shows) for d in (TUE, WED, THU, FRI)] == [
        (5, 2, 1),
        (1, 0, 0),
        (1, 0, 0),
        (1, 0, 0),
    ]
    assert rows[MON].starting == 0
    assert (rows[TUE].cancellation_rate, rows[TUE].no_show_rate) == (D("40.0"), D("33.3"))
    assert rows[WED].cancellation_rate == D("0.0")
    assert rows[MON].cancellation_rate is None  # nothing started: no rate rather than 0 %

    total = report.total
    assert (total.made, total.confirmed, total.starting, total.cancelled, total.no_shows) == (11, 9, 8, 2, 1)
    assert total.cancellation_rate == D("25.0")  # 2 of 8
    assert total.no_show_rate == D("16.7")  # 1 of the 6 not cancelled


def test_bookings_by_week_and_filtered_by_offering_or_location(shop):
    fortnight = ReportFilters(start_date=MON, end_date=date(2026, 6, 14), time_zone=TZ, group="week")
    weeks = reports.report_bookings(filters=fortnight).rows
    assert [(w.period, w.made, w.starting) for w in weeks] == [(MON, 11, 8), (date(2026, 6, 8), 0, 1)]

    yoga = ReportFilters(start_date=MON, end_date=date(2026, 6, 7), time_zone=TZ, offering_id=shop["yoga"].pk)
    total = reports.report_bookings(filters=yoga).total
    assert (total.made, total.confirmed, total.starting, total.cancelled, total.no_shows) == (7, 5, 4, 1, 1)

    gym = ReportFilters(start_date=MON, end_date=date(2026, 6, 7), time_zone=TZ, location_id=shop["gym"].pk)
    total = reports.report_bookings(filters=gym).total
    assert (total.made, total.confirmed, total.starting) == (1, 1, 1)


def test_days_are_local_days_of_the_time_zone_reported_in(shop):
    """Monday's bookings were made at 08:00-10:00 in London: still Sunday evening in Honolulu."""
    honolulu = ReportFilters(start_date=date(2026, 5, 31), end_date=MON, time_zone="Pacific/Honolulu")
    rows = by_period(reports.report_bookings(filters=honolulu).rows)
    assert (rows[date(2026, 5, 31)].made, rows[MON].made) == (7, 4)
    assert reports.report_bookings(filters=WEEK).rows[0].made == 7  # all on Monday in London


# --- revenue ------------------------------------------------------------------------------------


def test_revenue_per_currency_by_booking_date(shop):
    report = reports.report_revenue(filters=WEEK)
    assert report.currencies == ["EUR", "GBP"]
    gbp = by_period(report.rows_in("GBP"))
    # Monday: paid 24 + 12 + 12 + 40 + 40, refunded 12 (B2) + 20 (A2); nothing owed by B1, B4, A1.
    assert (gbp[MON].collected, gbp[MON].refunded, gbp[MON].net, gbp[MON].outstanding) == (
        D("128.00"),
        D("32.00"),
        D("96.00"),
        D("0.00"),
    )
    # Tuesday: B5 paid 10 of 24, B6 24 of 24, A3 20 of 40.
    assert (gbp[TUE].collected, gbp[TUE].outstanding) == (D("54.00"), D("34.00"))
    assert gbp[WED].collected == D("0.00")
    totals = {t.currency: t for t in report.totals}
    assert (
        totals["GBP"].collected,
        totals["GBP"].refunded,
        totals["GBP"].net,
        totals["GBP"].outstanding,
    ) == (
        D("182.00"),
        D("32.00"),
        D("150.00"),
        D("34.00"),
    )
    assert (totals["EUR"].collected, totals["EUR"].outstanding) == (D("15.00"), D("5.00"))


def test_outstanding_is_the_models_amount_due_of_standing_bookings(shop):
    standing = Booking.objects.filter(
        status__in=["confirmed", "completed", "no_show"], created_at__gte=WEEK.start_at, currency="GBP"
    )
    expected = sum((b.amount_due for b in standing), D("0"))
    totals = {t.currency: t for t in reports.report_revenue(filters=WEEK).totals}
    assert totals["GBP"].outstanding == expected == D("34.00")


# --- occupancy ----------------------------------------------------------------------------------


def test_session_occupancy_from_the_capacity_counters(shop):
    report = reports.report_occupancy(filters=WEEK)
    sessions = [(s.session_id, s.sold, s.held, s.capacity, s.occupancy) for s in report.sessions]
    assert sessions == [
        (shop["tue"].pk, 3, 1, 10, D("30.0")),  # B1 2 + B4 1 (no-shows keep their place); B8 holds 1
        (shop["thu"].pk, 2, 0, 2, D("100.0")),
        (shop["fri"].pk, 1, 0, 5, D("20.0")),
    ]  # next Tuesday is outside the range
    periods = by_period(report.periods)
    assert (periods[THU].sessions, periods[THU].sold, periods[THU].capacity) == (1, 2, 2)
    assert periods[MON].occupancy is None
    assert (report.total.sold, report.total.capacity, report.total.occupancy) == (6, 17, D("35.3"))


# --- resources ----------------------------------------------------------------------------------


def test_resource_time_booked_against_working_hours(shop):
    report = reports.report_resources(filters=WEEK)
    rows = {
        r.name: (r.units, r.appointments, r.booked_hours, r.working_hours, r.utilisation)
        for r in report.resources
    }
    assert rows == {
        "Ana": (1, 1, D("1.00"), D("56.00"), D("1.8")),  # A1; A2 was cancelled, its time given back
        "Bob": (1, 1, D("1.00"), D("20.00"), D("5.0")),  # A3; 4 h on five weekdays
        "Room": (2, 0, D("0.00"), D("112.00"), D("0.0")),  # two units, 8 h × 7 days each
    }
    assert (report.total_booked_hours, report.total_working_hours) == (D("2.00"), D("188.00"))

    studio = ReportFilters(
        start_date=MON, end_date=date(2026, 6, 7), time_zone=TZ, location_id=shop["studio"].pk
    )
    assert reports.report_resources(filters=studio).resources == []
    cut = ReportFilters(start_date=MON, end_date=date(2026, 6, 7), time_zone=TZ, offering_id=shop["cut"].pk)
    assert [r.name for r in reports.report_resources(filters=cut).resources] == ["Ana", "Bob"]


# --- waitlist -----------------------------------------------------------------------------------


def test_waitlist_demand_by_date_joined(shop):
    report = reports.report_waitlist(filters=WEEK)
    assert [(s.session_id, s.requests, s.places, s.booked, s.waiting) for s in report.sessions] == [
        (shop["thu"].pk, 2, 3, 0, 2)
    ]
    assert (by_period(report.periods)[TUE].requests, by_period(report.periods)[TUE].places) == (2, 3)
    assert (report.total.requests, report.total.places) == (2, 3)
    later = ReportFilters(start_date=WED, end_date=FRI, time_zone=TZ)
    assert reports.report_waitlist(filters=later).sessions == []


# --- the page -----------------------------------------------------------------------------------


def login(client, *, manager: bool = True, staff: bool = True):
    user = get_user_model().objects.create_user("someone", password="pw", is_staff=staff)
    if manager:
        user.groups.add(Group.objects.get(name=MANAGER))
    client.force_login(user)
    return user


QUERY = {"start": "2026-06-01", "end": "2026-06-07", "group": "day"}


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment; filename=")
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_the_page_shows_the_figures_charts_and_tables(client, shop, settings):
    settings.BUSINESS_TIME_ZONE = TZ
    login(client)
    assert reverse("staff:reports") == URL
    page = client.get(URL, QUERY)
    assert page.status_code == 200
    html = page.content.decode()
    assert '<a href="/admin/">Home</a> › Reports' in html
    assert html.count('<figure class="report-chart">') == 6  # made, by start, EUR, GBP, occupancy, waitlist
    assert '<title id="chart-bookings-made-title">Bookings made and confirmed</title>' in html
    assert "<title>2 Jun: 5 starting</title>" in html
    assert "Occupancy per session" in html
    assert ">182.00<" in html and ">35.3<" in html and ">16.7<" in html
    assert "format=csv&amp;table=bookings" in html


def test_every_table_downloads_as_csv_with_the_same_numbers(client, shop, settings):
    settings.BUSINESS_TIME_ZONE = TZ
    login(client)

    bookings = csv_rows(client.get(URL, {**QUERY, "format": "csv", "table": "bookings"}))
    assert bookings[0][:3] == ["Period", "Made (by booking date)", "Confirmed (by booking date)"]
    assert bookings[2] == ["Tue 2 Jun 2026", "4", "4", "5", "2", "1", "40.0", "33.3"]
    assert bookings[1][-2:] == ["", ""]  # Monday: nothing started, so no rates
    assert bookings[-1] == ["Total", "11", "9", "8", "2", "1", "25.0", "16.7"]

    revenue = csv_rows(client.get(URL, {**QUERY, "format": "csv", "table": "revenue"}))
    assert revenue[-2:] == [
        ["Total", "EUR", "15.00", "0.00", "15.00", "5.00"],
        ["Total", "GBP", "182.00", "32.00", "150.00", "34.00"],
    ]
    assert ["Mon 1 Jun 2026", "GBP", "128.00", "32.00", "96.00", "0.00"] in revenue

    sessions = csv_rows(client.get(URL, {**QUERY, "format": "csv", "table": "sessions"}))
    assert sessions[1] == ["Tue 2 Jun 2026, 18:00 BST", "Yoga", "Studio", "3", "1", "10", "30.0"]
    occupancy = csv_rows(client.get(URL, {**QUERY, "format": "csv", "table": "occupancy"}))
    assert occupancy[-1] == ["Total", "3", "6", "17", "35.3"]

    resources = csv_rows(client.get(URL, {**QUERY, "format": "csv", "table": "resources"}))
    assert resources[1] == ["Ana", "Salon", "1", "1", "1.00", "56.00", "1.8"]
    assert resources[-1] == ["Total", "", "4", "2", "2.00", "188.00", "1.1"]

    waitlist = csv_rows(client.get(URL, {**QUERY, "format": "csv", "table": "waitlist-sessions"}))
    assert waitlist[1] == ["Thu 4 Jun 2026, 18:00 BST", "Yoga", "2", "3", "0", "2"]

    assert client.get(URL, {**QUERY, "format": "csv", "table": "nope"}).status_code == 400


def test_the_default_range_is_the_last_30_days_in_the_business_time_zone(client, shop, settings):
    settings.BUSINESS_TIME_ZONE = TZ
    login(client)
    with time_machine.travel(datetime(2026, 6, 30, 23, 30, tzinfo=UTC), tick=False):  # 1 July 00:30 London
        response = client.get(URL)
    filters = response.context["filters"]
    assert (filters.start_date, filters.end_date, filters.group) == (
        date(2026, 6, 2),
        date(2026, 7, 1),
        "day",
    )
    assert len(response.context["sections"][0].tables[0].rows) == 30


def test_a_wrong_range_is_explained_not_reported(client, shop, settings):
    login(client)
    response = client.get(URL, {"start": "2026-06-07", "end": "2026-06-01"})
    assert response.status_code == 200
    assert "The end date must be on or after the start date." in response.content.decode()
    assert response.context["sections"] == []
    assert (
        client.get(
            URL, {"start": "2026-06-07", "end": "2026-06-01", "format": "csv", "table": "bookings"}
        ).status_code
        == 400
    )


def test_only_staff_with_view_reports_see_the_page(client, shop):
    anonymous = client.get(URL)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/?next=/staff/reports/")

    user = login(client, manager=False)
    assert client.get(URL).status_code == 403
    assert client.get(URL, {"format": "csv", "table": "revenue"}).status_code == 403

    user.user_permissions.add(
        Permission.objects.get(codename="view_reports", content_type__app_label="booking")
    )
    user = get_user_model().objects.get(pk=user.pk)  # permissions are cached on the instance
    client.force_login(user)
    assert client.get(URL).status_code == 200


def test_front_desk_cannot_see_the_reports(client, shop):
    user = login(client, manager=False)
    user.groups.add(Group.objects.get(name="Front desk"))
    assert client.get(URL).status_code == 403


# --- cost ---------------------------------------------------------------------------------------


def page_queries(client) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(URL, QUERY).status_code == 200
    return len(captured)


def test_the_page_costs_the_same_few_queries_however_many_bookings(
    client, shop, settings, django_assert_max_num_queries
):
    settings.BUSINESS_TIME_ZONE = TZ
    login(client)
    with django_assert_max_num_queries(25):
        before = page_queries(client)

    later = shop["next_tue"]
    for _ in range(6):
        sold(hold_places(shop["yoga"], later, 1, now=TUE_NOW), "12.00", now=TUE_NOW)
    for hour in (9, 11, 13, 15):
        sold(hold_slot(shop["cut"], at(hour, day=FRI), now=TUE_NOW), "40.00", now=TUE_NOW)
    sold(hold_places(shop["yoga"], shop["tue"], 5, now=TUE_NOW), "60.00", now=TUE_NOW)
    assert Booking.objects.count() == 22

    assert page_queries(client) == before
