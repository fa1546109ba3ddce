"""CalDAV (iCloud, Nextcloud, Fastmail …) against a real Radicale server: connected in admin with a
password, busy time in by sync tokens, bookings out, and an appointment deleted on the phone flagged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import caldav
import pytest
from django.urls import reverse

from booking.services import booking_reschedule
from calendarsync.models import CalendarConnection
from core.outbox.services import outbox_sweep
from standins.radicale import Radicale, radicale
from tests.calendarsync.helpers import ALL_DAY, NOW, book, free_times, paris, sync

pytestmark = pytest.mark.django_db

USER, PASSWORD = "camille", "app-password-1"


@pytest.fixture(scope="module")
def server() -> Iterator[Radicale]:
    with radicale(users={USER: PASSWORD}) as running:
        yield running


@pytest.fixture
def phone(server) -> caldav.Calendar:
    """Camille's calendar as her phone sees it (the caldav library, not our code)."""
    client = caldav.DAVClient(url=server.url, username=USER, password=PASSWORD)
    return client.principal().make_calendar(name=f"Work {uuid.uuid4().hex[:6]}")


def phone_add(calendar, summary: str, starts, ends) -> caldav.Event:
    return calendar.save_event(dtstart=starts, dtend=ends, summary=summary, uid=uuid.uuid4().hex)


def connect_in_admin(admin_client, salon, server, phone, *, password=PASSWORD, mode="two_way"):
    return admin_client.post(
        reverse("admin:calendarsync_calendarconnection_add"),
        {
            "resource": salon["camille"].pk,
            "provider": "caldav",
            "mode": mode,
            "calendar_id": str(phone.url),
            "caldav_url": server.url,
            "caldav_username": USER,
            "caldav_password": password,
        },
    )


def test_a_wrong_password_is_refused_in_the_form_and_nothing_is_saved(admin_client, salon, server, phone):
    answer = connect_in_admin(admin_client, salon, server, phone, password="wrong")
    assert answer.status_code == 200
    assert "The CalDAV server did not accept these details" in answer.content.decode()
    assert not CalendarConnection.objects.exists()


def test_staff_connect_a_caldav_calendar_and_its_events_block_booking_times(
    admin_client, salon, server, phone
):
    phone_add(phone, "Dentist", paris(10), paris(11))
    answer = connect_in_admin(admin_client, salon, server, phone, mode="read_only")
    assert answer.status_code == 302
    connection = CalendarConnection.objects.get()
    assert (connection.status, connection.account) == ("connected", USER)
    assert PASSWORD.encode() not in bytes(connection.secret)  # stored encrypted

    sync(connection)
    assert free_times(salon) == [t for t in ALL_DAY if t != "10:00"]

    dentist = phone.search(summary="Dentist", event=True)[0]
    dentist.delete()
    phone_add(phone, "Gym", paris(16), paris(17))
    sync(connection)  # incremental, by the collection's sync token
    assert free_times(salon) == ALL_DAY[:-1]


def test_a_booking_is_written_to_the_calendar_and_deleting_it_on_the_phone_flags_the_booking(
    admin_client, salon, server, phone
):
    connect_in_admin(admin_client, salon, server, phone)
    connection = CalendarConnection.objects.get()
    sync(connection)
    booking = book(salon, paris(10))
    [event] = phone.events()
    assert event.icalendar_component["SUMMARY"] == "Coupe: Zoé Martin"
    assert event.icalendar_component.start == paris(10)

    booking_reschedule(booking=booking, new_starts_at=paris(12), now=NOW, by_customer=False)
    outbox_sweep(now=NOW)
    [event] = phone.events()
    assert event.icalendar_component.start == paris(12)

    event.delete()  # Camille deletes it on her phone
    sync(connection)
    booking.refresh_from_db()
    assert booking.status == "confirmed" and booking.needs_attention
    assert "Deleted from Camille's calendar" in booking.attention_reason
