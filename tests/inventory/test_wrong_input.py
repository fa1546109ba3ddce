"""Wrong input is refused with a message saying what to fix, in services and in admin, and changes nothing."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from inventory.models import Blackout, CapacityCounter, Location, Offering, Resource, Session, WorkingHours
from inventory.services import session_create, working_hours_replace
from tests.inventory import factories as make

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def studio():
    return make.location()


@pytest.fixture
def owner_client(client):
    owner = get_user_model().objects.create_superuser("owner", "owner@example.com", "pw")
    client.force_login(owner)
    return client


def inline(prefix, rows, *, initial=0):
    """POST data for an admin inline formset with *rows* (dicts of field values)."""
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for n, row in enumerate(rows):
        data.update({f"{prefix}-{n}-{k}": v for k, v in row.items()})
    return data


def resource_form(location, **fields):
    return {
        "location": location.pk,
        "name": "Ana",
        "kind": "staff",
        "count": "1",
        "email": "",
        "bio": "",
        "is_active": "on",
        **fields,
        **inline("working_hours", []),
        **inline("date_overrides", []),
        **inline("blackouts", []),
    }


# --- services -----------------------------------------------------------------------------------


def test_overlapping_working_hours_are_refused_and_the_old_hours_kept(studio):
    ana = make.resource(at=studio, name="Ana", now=NOW, hours={1: [(time(9), time(12))]})
    with pytest.raises(ValidationError, match="Tuesday: 09:00–13:00 overlaps 12:00–17:00"):
        working_hours_replace(resource=ana, periods=[(1, time(9), time(13)), (1, time(12), time(17))])
    assert list(WorkingHours.objects.filter(resource=ana).values_list("start_time", "end_time")) == [
        (time(9), time(12))
    ]


def test_working_hours_that_end_before_they_start_are_refused(studio):
    ana = make.resource(at=studio, name="Ana", now=NOW, hours={})
    with pytest.raises(ValidationError, match="Monday: working hours must end after they start"):
        working_hours_replace(resource=ana, periods=[(0, time(17), time(9))])
    assert not WorkingHours.objects.filter(resource=ana).exists()


def test_an_unknown_time_zone_is_refused_by_name():
    location = Location(
        name="Base",
        slug="base",
        address_line1="1 Crater Rd",
        city="Olympus",
        country="MA",
        time_zone="Mars/Olympus_Mons",
    )
    with pytest.raises(ValidationError, match="Mars/Olympus_Mons is not a known time zone"):
        location.full_clean()


def test_a_session_ending_before_it_starts_or_without_places_is_refused(studio):
    yoga = make.class_offering(at=studio)
    with pytest.raises(ValidationError, match="must end after it starts"):
        session_create(offering=yoga, starts_at=NOW + timedelta(days=1), ends_at=NOW, capacity=10, now=NOW)
    with pytest.raises(ValidationError, match="capacity of at least one place"):
        session_create(offering=yoga, starts_at=NOW, ends_at=NOW + timedelta(hours=1), capacity=-5, now=NOW)
    assert not Session.objects.exists()


def test_an_appointment_without_duration_is_refused_with_the_field_named(studio):
    offering = Offering(kind="appointment", name="Cut", slug="cut", location=studio, currency="EUR")
    with pytest.raises(ValidationError) as error:
        offering.full_clean()
    assert error.value.message_dict["duration"] == ["An appointment needs a duration, e.g. 0:45:00."]


def test_a_blackout_needs_its_end_after_its_start(studio):
    blackout = Blackout(location=studio, starts_at=NOW, ends_at=NOW - timedelta(hours=1), reason="Holiday")
    with pytest.raises(ValidationError, match="must end after it starts"):
        blackout.full_clean()


# --- admin --------------------------------------------------------------------------------------


def test_admin_explains_an_unknown_time_zone(owner_client):
    response = owner_client.post(
        "/admin/inventory/location/add/",
        {
            "name": "Base",
            "slug": "base",
            "address_line1": "1 Crater Rd",
            "city": "X",
            "country": "MA",
            "time_zone": "Europe/Atlantis",
            "postcode": "",
            "phone": "",
            "directions": "",
        },
    )
    assert response.status_code == 200
    assert "Europe/Atlantis is not a known time zone" in response.content.decode()
    assert not Location.objects.filter(slug="base").exists()


def test_admin_explains_overlapping_working_hours_in_one_save(owner_client, studio):
    data = resource_form(studio)
    data.update(
        inline(
            "working_hours",
            [
                {"weekday": "2", "start_time": "09:00", "end_time": "13:00"},
                {"weekday": "2", "start_time": "12:30", "end_time": "17:00"},
            ],
        )
    )
    response = owner_client.post("/admin/inventory/resource/add/", data)
    assert response.status_code == 200
    assert "Wednesday: 09:00–13:00 overlaps 12:30–17:00" in response.content.decode()
    assert not Resource.objects.filter(name="Ana").exists()


def test_admin_explains_hours_that_overlap_hours_already_saved(owner_client, studio):
    ana = make.resource(at=studio, name="Ana", now=NOW, hours={2: [(time(9), time(13))]})
    existing = WorkingHours.objects.get(resource=ana)
    data = resource_form(studio)
    data.update(
        inline(
            "working_hours",
            [
                {
                    "id": existing.pk,
                    "resource": ana.pk,
                    "weekday": "2",
                    "start_time": "09:00",
                    "end_time": "13:00",
                },
                {"weekday": "2", "start_time": "12:00", "end_time": "14:00"},
            ],
            initial=1,
        )
    )
    response = owner_client.post(f"/admin/inventory/resource/{ana.pk}/change/", data)
    assert response.status_code == 200
    assert "overlaps" in response.content.decode()
    assert WorkingHours.objects.filter(resource=ana).count() == 1


def test_admin_explains_hours_that_end_before_they_start(owner_client, studio):
    data = resource_form(studio)
    data.update(inline("working_hours", [{"weekday": "0", "start_time": "17:00", "end_time": "09:00"}]))
    response = owner_client.post("/admin/inventory/resource/add/", data)
    assert "Working hours must end after it starts (17:00 – 09:00)" in response.content.decode()


def test_admin_refuses_a_pool_count_of_zero(owner_client, studio):
    response = owner_client.post("/admin/inventory/resource/add/", resource_form(studio, count="0"))
    assert "Ensure this value is greater than or equal to 1." in response.content.decode()


def test_admin_explains_a_session_that_ends_before_it_starts(owner_client, studio):
    yoga = make.class_offering(at=studio)
    response = owner_client.post(
        "/admin/inventory/session/add/",
        {
            "offering": yoga.pk,
            "starts_at_0": "2026-07-01",
            "starts_at_1": "18:00",
            "ends_at_0": "2026-07-01",
            "ends_at_1": "17:00",
            "capacity": "12",
        },
    )
    assert "The session must end after it starts." in response.content.decode()
    assert not Session.objects.exists()


def test_admin_refuses_to_lower_capacity_below_the_places_sold(owner_client, studio):
    yoga = make.class_offering(at=studio)
    session = make.session(offering=yoga, starts_at=NOW + timedelta(days=3), capacity=10, now=NOW)
    total = CapacityCounter.objects.get(session=session)
    CapacityCounter.objects.filter(pk=total.pk).update(sold=7)
    data = {
        "status": "scheduled",
        "sales_open_at_0": "",
        "sales_open_at_1": "",
        "sales_close_at_0": "",
        "sales_close_at_1": "",
    }
    data.update(inline("counters", [{"id": total.pk, "session": session.pk, "capacity": "5"}], initial=1))
    response = owner_client.post(f"/admin/inventory/session/{session.pk}/change/", data)
    assert "Capacity cannot be lower than the places already held or sold (7)." in response.content.decode()
    total.refresh_from_db()
    assert total.capacity == 10


def test_admin_builds_a_seat_map_from_rows_and_seats(owner_client, studio):
    concert = make.event(at=studio, zones={"Stalls": 0}, tickets={})
    stalls = concert.zones.get()
    response = owner_client.post(
        f"/admin/inventory/zone/{stalls.pk}/change/",
        {
            "offering": concert.pk,
            "name": "Stalls",
            "capacity": "0",
            "is_seated": "on",
            "sort_order": "0",
            "rows": "4",
            "seats_per_row": "10",
        },
        follow=True,
    )
    assert "Seat map built: 40 seats." in response.content.decode()
    stalls.refresh_from_db()
    assert stalls.capacity == 40
