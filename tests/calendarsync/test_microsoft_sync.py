"""Outlook (Microsoft 365), two ways, through msal and Graph over TLS against the local stand-in
(standins/microsoft/): connect in admin, busy time in by delta links and push subscriptions,
bookings out, and changes made in Outlook flagged on the booking."""

from __future__ import annotations

import urllib.parse
from datetime import datetime, timedelta

import pytest
from django.urls import reverse

from booking.services import booking_cancel, booking_reschedule
from calendarsync.models import CalendarConnection
from core.audit.models import TimelineEntry
from core.outbox.services import outbox_sweep
from inventory.models import BusyBlock
from tests.calendarsync.helpers import ALL_DAY, NOW, STAFF, WEDNESDAY, book, free_times, paris, sync
from tests.calendarsync.helpers import microsoft_connect as connect
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db


def test_staff_connect_outlook_in_admin_and_its_busy_time_blocks_booking(microsoft, salon, admin_client):
    microsoft.create_event(STAFF, start=paris(10), end=paris(11), subject="Supplier call")
    microsoft.create_event(STAFF, start=paris(14), end=paris(15), subject="Maybe", show_as="free")

    answer = admin_client.post(
        reverse("admin:calendarsync_calendarconnection_add"),
        {"resource": salon["camille"].pk, "provider": "microsoft", "mode": "read_only"},
    )
    [connection] = CalendarConnection.objects.all()
    to_microsoft = admin_client.get(answer.url)
    query = microsoft.authorization_response(to_microsoft.url)  # Camille signs in and consents
    admin_client.get(reverse("calendarsync:oauth_callback") + "?" + urllib.parse.urlencode(query))

    connection.refresh_from_db()
    assert (connection.status, connection.account) == ("connected", STAFF)
    sync(connection)
    assert free_times(salon) == [t for t in ALL_DAY if t != "10:00"]


def test_delta_links_bring_moves_and_deletions_and_an_expired_one_a_full_sync(microsoft, salon):
    call = microsoft.create_event(STAFF, start=paris(10), end=paris(11), subject="Supplier call")
    gym = microsoft.create_event(STAFF, start=paris(15), end=paris(16), subject="Gym")
    connection = connect(microsoft, salon["camille"], mode="read_only")
    sync(connection)

    microsoft.move_event(STAFF, call["id"], start=paris(12), end=paris(13))
    microsoft.delete_event(STAFF, gym["id"])
    microsoft.create_event(STAFF, start=WEDNESDAY + timedelta(days=1), end=WEDNESDAY + timedelta(days=2))
    sync(connection)
    assert free_times(salon) == [t for t in ALL_DAY if t != "12:00"]
    assert free_times(salon, WEDNESDAY + timedelta(days=1)) == []  # all day, in Paris

    microsoft.expire_delta_tokens()
    microsoft.create_event(STAFF, start=paris(9), end=paris(10), subject="School run")
    sync(connection)
    assert free_times(salon) == [t for t in ALL_DAY if t not in ("09:00", "12:00")]
    assert BusyBlock.objects.count() == 3


def test_bookings_go_into_outlook_move_with_a_reschedule_and_leave_on_cancellation(microsoft, salon):
    connection = connect(microsoft, salon["camille"])
    sync(connection)
    booking = book(salon, paris(10))
    [event] = microsoft.events(STAFF)
    assert event["subject"] == "Coupe: Zoé Martin"

    booking_reschedule(booking=booking, new_starts_at=paris(11), now=NOW, by_customer=False)
    outbox_sweep(now=NOW)
    [event] = microsoft.events(STAFF)
    assert datetime.fromisoformat(event["start"]["dateTime"][:19] + "+00:00") == paris(11)

    sync(connection)  # our own event is not busy time on top of the booking
    assert BusyBlock.objects.count() == 0

    booking_cancel(booking=booking, now=NOW, by_customer=False)
    outbox_sweep(now=NOW)
    assert microsoft.events(STAFF) == []


def test_an_appointment_moved_in_outlook_is_flagged_with_both_times(microsoft, salon):
    connection = connect(microsoft, salon["camille"])
    sync(connection)
    booking = book(salon, paris(10))
    [event] = microsoft.events(STAFF)

    microsoft.move_event(STAFF, event["id"], start=paris(16), end=paris(17))
    sync(connection)

    booking.refresh_from_db()
    assert booking.status == "confirmed" and booking.needs_attention
    assert "from Wed 02 Dec 10:00 to Wed 02 Dec 16:00" in booking.attention_reason
    entry = TimelineEntry.objects.get(action="booking.attention.flagged")
    assert entry.data["calendar"] == "Outlook (Microsoft 365)"


def test_a_revoked_microsoft_grant_asks_for_a_reconnect(microsoft, salon):
    connection = connect(microsoft, salon["camille"])
    sync(connection)
    microsoft.revoke_refresh_tokens(STAFF)
    microsoft.expire_access_tokens()
    sync(connection)
    connection.refresh_from_db()
    assert connection.status == "needs_reconnect"


@pytest.mark.django_db(transaction=True)
def test_a_graph_notification_makes_the_new_busy_time_unbookable_within_seconds(
    microsoft, salon, settings, live_server, celery_worker
):
    settings.SITE_URL = live_server.url  # Graph validates this address, then posts changes to it
    connection = connect(microsoft, salon["camille"], mode="read_only")  # the worker's first sync subscribes
    wait_until(lambda: CalendarConnection.objects.get(pk=connection.pk).channel_token, timeout=15)
    [subscription] = microsoft.subscriptions()
    connection.refresh_from_db()
    assert subscription["clientState"] == connection.channel_token

    microsoft.create_event(STAFF, start=paris(13), end=paris(14), subject="Lunch")

    wait_until(lambda: "13:00" not in free_times(salon), timeout=15)
