"""Google Calendar, two ways: a stylist's own appointments block booking times, and bookings appear in
her calendar and follow reschedules and cancellations. The real google-api-python-client, google-auth
and google-auth-oauthlib talk to the local stand-in (standins/google_calendar/)."""

from __future__ import annotations

import urllib.parse
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from booking.models import BookingStatus
from booking.services import booking_cancel, booking_reschedule
from calendarsync.models import CalendarConnection, CalendarEvent
from calendarsync.providers.base import ProviderUnavailable
from calendarsync.services import (
    calendar_booking_push,
    connection_create,
    connection_disconnect,
)
from core.audit.models import TimelineEntry
from core.outbox.services import outbox_sweep
from inventory.models import BusyBlock
from tests.calendarsync.helpers import ALL_DAY, NOW, STAFF, WEDNESDAY, book, free_times, paris, sync
from tests.calendarsync.helpers import google_connect as connect
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db


def test_staff_connect_their_google_calendar_in_admin_and_its_events_block_booking_times(
    google, salon, admin_client
):
    google.create_event(STAFF, start=paris(10), end=paris(11, 30), summary="Dentist")

    answer = admin_client.post(
        reverse("admin:calendarsync_calendarconnection_add"),
        {
            "resource": salon["camille"].pk,
            "provider": "google",
            "mode": "two_way",
            "calendar_id": "",
            "notify_email": "",
        },
    )
    [connection] = CalendarConnection.objects.all()
    assert answer.status_code == 302 and answer.url == reverse("calendarsync:connect", args=[connection.pk])
    to_google = admin_client.get(answer.url)
    assert to_google.url.startswith(google.auth_uri)
    query = google.authorization_response(to_google.url)  # Camille consents at Google
    back = admin_client.get(reverse("calendarsync:oauth_callback") + "?" + urllib.parse.urlencode(query))
    assert back.status_code == 302

    connection.refresh_from_db()
    assert (connection.status, connection.account, connection.notify_email) == ("connected", STAFF, STAFF)
    assert b"Dentist" not in bytes(connection.secret)  # tokens are stored encrypted
    sync(connection)
    assert free_times(salon) == ["09:00", "12:00", "13:00", "14:00", "15:00", "16:00"]
    page = admin_client.get(reverse("admin:calendarsync_calendarconnection_change", args=[connection.pk]))
    assert b"Connected" in page.content


def test_a_declined_consent_connects_nothing_and_says_so(google, salon, admin_client):
    connection = connection_create(resource=salon["camille"], provider="google", mode="read_only", now=NOW)
    to_google = admin_client.get(reverse("calendarsync:connect", args=[connection.pk]))
    google.deny_next_consent()
    query = google.authorization_response(to_google.url)
    back = admin_client.get(
        reverse("calendarsync:oauth_callback") + "?" + urllib.parse.urlencode(query), follow=True
    )
    assert "The calendar was not connected" in back.content.decode()
    connection.refresh_from_db()
    assert connection.status == "pending" and not connection.secret


def test_changes_in_the_calendar_reach_availability_incrementally(google, salon):
    lunch = google.create_event(STAFF, start=paris(12), end=paris(13), summary="Lunch")
    gym = google.create_event(STAFF, start=paris(15), end=paris(16), summary="Gym")
    connection = connect(google, salon["camille"])
    sync(connection)
    assert free_times(salon) == ["09:00", "10:00", "11:00", "13:00", "14:00", "16:00"]

    google.move_event(STAFF, lunch["id"], start=paris(13), end=paris(14))
    google.delete_event(STAFF, gym["id"])
    google.create_event(STAFF, start=paris(9), end=paris(10), summary="School run")
    google.create_event(STAFF, start=paris(10), end=paris(11), summary="Maybe", transparency="transparent")
    sync(connection)

    assert free_times(salon) == ["10:00", "11:00", "12:00", "14:00", "15:00", "16:00"]
    assert connection.__class__.objects.get(pk=connection.pk).sync_token  # the next sync is incremental
    summaries = sorted(BusyBlock.objects.filter(resource=salon["camille"]).values_list("summary", flat=True))
    assert summaries == ["Lunch", "School run"]


def test_an_all_day_event_blocks_the_whole_local_day_and_a_new_york_meeting_lands_at_its_real_time(
    google, salon
):
    google.create_event(STAFF, start=WEDNESDAY, end=WEDNESDAY + timedelta(days=1), summary="Training day")
    new_york = ZoneInfo("America/New_York")
    thursday = WEDNESDAY + timedelta(days=1)
    google.create_event(  # 08:00 in New York is 14:00 in Paris
        STAFF,
        start=datetime(2026, 12, 3, 8, tzinfo=new_york),
        end=datetime(2026, 12, 3, 9, tzinfo=new_york),
        summary="Call with NY",
    )
    connection = connect(google, salon["camille"])
    sync(connection)
    assert free_times(salon) == []
    assert free_times(salon, thursday) == [t for t in ALL_DAY if t != "14:00"]
    block = BusyBlock.objects.get(summary="Call with NY")
    assert block.starts_at == datetime(2026, 12, 3, 8, tzinfo=new_york)


def test_a_stale_sync_token_means_a_full_sync_that_also_drops_what_was_deleted(google, salon):
    gym = google.create_event(STAFF, start=paris(15), end=paris(16), summary="Gym")
    connection = connect(google, salon["camille"])
    sync(connection)
    google.delete_event(STAFF, gym["id"])
    google.create_event(STAFF, start=paris(9), end=paris(10), summary="School run")
    google.expire_sync_tokens()  # Google answers 410: full sync required

    sync(connection)

    assert free_times(salon) == ALL_DAY[1:]
    assert TimelineEntry.objects.filter(action="calendarsync.synced", data__full=True).count() == 2


def test_a_revoked_grant_is_shown_in_admin_and_emailed_with_a_reconnect_link(
    google, salon, inbox, admin_client
):
    google.create_event(STAFF, start=paris(12), end=paris(13), summary="Lunch")
    connection = connect(google, salon["camille"])
    sync(connection)
    google.revoke_refresh_token(connection.credentials()["refresh_token"])  # Camille removed our access
    google.expire_access_tokens()

    sync(connection)
    outbox_sweep(now=NOW)

    connection.refresh_from_db()
    assert connection.status == "needs_reconnect" and "invalid_grant" in connection.last_error
    assert "12:00" not in free_times(salon)  # the last known busy time still holds
    [mail] = inbox.to(STAFF)
    assert mail["Subject"] == "Reconnect the calendar of Camille"
    assert reverse("calendarsync:connect", args=[connection.pk]) in mail.get_content()
    page = admin_client.get(reverse("admin:calendarsync_calendarconnection_changelist"))
    assert "Needs reconnecting" in page.content.decode()
    sync(connection)
    outbox_sweep(now=NOW)
    assert len(inbox.to(STAFF)) == 1  # told once, not on every sync


def test_an_outage_keeps_the_last_busy_time_and_shows_since_when(google, salon):
    google.create_event(STAFF, start=paris(12), end=paris(13), summary="Lunch")
    connection = connect(google, salon["camille"])
    sync(connection)
    google.fail_next(1, status=503)

    with pytest.raises(ProviderUnavailable):  # the Celery task retries it with back-off
        sync(connection)

    connection.refresh_from_db()
    assert connection.status == "failing" and connection.failing_since == NOW
    assert "12:00" not in free_times(salon)
    sync(connection)
    connection.refresh_from_db()
    assert (connection.status, connection.failing_since) == ("connected", None)


def test_a_booking_appears_in_her_calendar_moves_with_a_reschedule_and_goes_on_cancellation(google, salon):
    connection = connect(google, salon["camille"])
    sync(connection)

    booking = book(salon, paris(10))
    [event] = google.events(STAFF)
    assert event["summary"] == "Coupe: Zoé Martin"
    assert datetime.fromisoformat(event["start"]["dateTime"]) == paris(10)
    assert event["start"]["timeZone"] == "Europe/Paris"

    calendar_booking_push(booking_id=booking.pk, now=NOW)  # a retry after a lost answer
    assert len(google.events(STAFF)) == 1

    booking_reschedule(booking=booking, new_starts_at=paris(14), now=NOW, by_customer=False)
    outbox_sweep(now=NOW)
    [event] = google.events(STAFF)
    assert datetime.fromisoformat(event["start"]["dateTime"]) == paris(14)

    booking_cancel(booking=booking, now=NOW, by_customer=False)
    outbox_sweep(now=NOW)
    assert google.events(STAFF) == []
    actions = list(  # in the order written: all three carry the same `now`; a query has no order of its own
        TimelineEntry.objects.filter(action__startswith="calendarsync.event")
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert actions == [
        "calendarsync.event.created",
        "calendarsync.event.updated",
        "calendarsync.event.deleted",
    ]


def test_our_own_events_do_not_block_the_booking_they_show_and_read_only_calendars_get_none(google, salon):
    connection = connect(google, salon["camille"], mode=CalendarConnection.Mode.READ_ONLY)
    book(salon, paris(10))
    assert google.events(STAFF) == []
    CalendarConnection.objects.filter(pk=connection.pk).update(mode="two_way")
    booking = book(salon, paris(11))
    sync(connection)
    assert BusyBlock.objects.count() == 0  # our event is the booking itself, already taken
    assert CalendarEvent.objects.get(booking=booking).status == "active"


def test_with_no_two_way_calendar_a_booking_costs_the_push_one_read(google, salon, django_assert_num_queries):
    connect(google, salon["camille"], mode=CalendarConnection.Mode.READ_ONLY)  # busy time in, nothing out
    booking = book(salon, paris(10))
    with django_assert_num_queries(1):  # on sale day every confirmation runs this
        assert calendar_booking_push(booking_id=booking.pk, now=NOW) == 0
    assert google.events(STAFF) == []


def test_moving_or_deleting_our_event_in_her_calendar_flags_the_booking_and_cancels_nothing(google, salon):
    connection = connect(google, salon["camille"])
    sync(connection)
    first, second = book(salon, paris(10)), book(salon, paris(15))
    ours = {e["start"]["dateTime"][11:16]: e["id"] for e in google.events(STAFF)}

    google.move_event(STAFF, ours["10:00"], start=paris(11), end=paris(12))
    google.delete_event(STAFF, ours["15:00"])
    sync(connection)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == BookingStatus.CONFIRMED
    assert (
        first.needs_attention
        and "Moved in Camille's calendar from Wed 02 Dec 10:00 to Wed 02 Dec 11:00"
        in (first.attention_reason)
    )
    assert second.needs_attention and "Deleted from Camille's calendar" in second.attention_reason
    flagged = TimelineEntry.objects.filter(action="booking.attention.flagged", actor="calendar")
    assert flagged.count() == 2
    sync(connection)  # reported once, not on every sync
    assert TimelineEntry.objects.filter(action="booking.attention.flagged").count() == 2


def test_disconnecting_removes_its_busy_time_and_stops_the_push_channel(google, salon, settings):
    settings.SITE_URL = "http://127.0.0.1:9"  # nothing listens: notifications are lost, the channel stays
    google.create_event(STAFF, start=paris(12), end=paris(13), summary="Lunch")
    connection = connect(google, salon["camille"])
    sync(connection)
    assert len(google.channels(STAFF)) == 1

    connection_disconnect(connection=connection, now=NOW)

    assert google.channels(STAFF) == [] and free_times(salon) == ALL_DAY
    connection.refresh_from_db()
    assert connection.status == "disconnected" and not connection.secret


@pytest.mark.django_db(transaction=True)
def test_a_push_from_google_makes_the_new_busy_time_unbookable_within_seconds(
    google, salon, settings, live_server, celery_worker
):
    settings.SITE_URL = live_server.url  # where Google is told to push
    connection = connect(google, salon["camille"])  # the worker's first sync opens the channel
    # Stored on our side, not only opened at Google: a push before that finds no channel and is refused.
    wait_until(lambda: CalendarConnection.objects.get(pk=connection.pk).channel_id, timeout=15)
    [channel] = google.channels(STAFF)
    assert channel["address"] == live_server.url + reverse("calendarsync:push_google")

    google.create_event(STAFF, start=paris(12), end=paris(13), summary="Lunch")  # Camille, on her phone

    wait_until(lambda: "12:00" not in free_times(salon), timeout=15)  # push -> task -> busy block
    assert BusyBlock.objects.get().summary == "Lunch"


def test_an_expired_access_token_is_refreshed_quietly_and_the_new_one_kept(google, salon):
    google.create_event(STAFF, start=paris(12), end=paris(13), summary="Lunch")
    connection = connect(google, salon["camille"])
    old_token = connection.credentials()["token"]
    google.expire_access_tokens()  # an hour later: Google answers 401 to the old token

    sync(connection)

    connection.refresh_from_db()
    assert connection.status == "connected" and "12:00" not in free_times(salon)
    assert connection.credentials()["token"] != old_token  # stored (encrypted) for the next sync
