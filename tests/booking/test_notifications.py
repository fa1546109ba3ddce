"""Emails and invites, sent through a real SMTP server from the events that changed the booking."""

import socket
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.utils import timezone
from icalendar import Calendar

from booking.services import (
    CustomerDetails,
    booking_cancel,
    booking_confirm,
    booking_money_update,
    booking_reschedule,
    reminders_enqueue_due,
)
from core.outbox.models import OutboxMessage
from core.outbox.services import outbox_sweep
from core.tasks import outbox_sweep_task
from inventory.models import CapacityCounter
from tests.booking.helpers import NOW, hold_places, hold_slot
from tests.conftest import celery_broker, running_worker, wait_until
from tests.inventory import factories as make

pytestmark = pytest.mark.django_db(transaction=True)

LONDON = ZoneInfo("Europe/London")


def deliver(now, rounds=3):
    """What the worker does: deliver the events, then the emails they queued."""
    for _ in range(rounds):
        outbox_sweep(now=now + timedelta(seconds=1))


def mail(inbox, to: str = "") -> list:
    """The booking's own emails (tickets for classes and events come separately, from ticketing)."""
    return [
        m for m in inbox.messages if m["X-Booking-Email"] != "tickets" and (not to or to in (m["to"] or ""))
    ]


def subject(message) -> str:
    return str(message["subject"]).strip()


def invite(message):
    [part] = [p for p in message.iter_attachments() if p.get_filename() and p.get_filename().endswith(".ics")]
    return Calendar.from_ical(part.get_payload(decode=True))


def event_of(calendar):
    return next(c for c in calendar.walk("VEVENT"))


@pytest.fixture
def soon(free_class):
    """A free class the day after tomorrow, at 18:30 London time, on sale now."""
    now = timezone.now()
    day = (now + timedelta(days=2)).astimezone(LONDON).date()
    session = free_class["session"]
    session.starts_at = datetime.combine(day, datetime.min.time()).replace(hour=18, minute=30, tzinfo=LONDON)
    session.ends_at = session.starts_at + timedelta(hours=1)
    session.save()
    return {**free_class, "now": now}


def test_a_confirmation_carries_everything_needed_and_a_calendar_invite(soon, inbox, flexible):
    soon["offering"].cancellation_policy = flexible
    soon["offering"].restrictions = "Bring a mat."
    soon["offering"].save()
    who = CustomerDetails("Ann Lee", "ann@example.com", time_zone="America/New_York")
    booking = hold_places(soon["offering"], soon["session"], 2, who=who, now=soon["now"])
    deliver(soon["now"])

    [email] = mail(inbox, "ann@example.com")
    assert subject(email).startswith("Confirmed: Open session")
    text = email.get_body(preferencelist=("plain",)).get_content()
    html = email.get_body(preferencelist=("html",)).get_content()
    local = soon["session"].starts_at.astimezone(LONDON)
    assert f"{local:%H:%M} {local.tzname()}" in text  # the venue's time with its zone
    assert ("your time" in text and "EST" in text) or "EDT" in text  # and the customer's, as it differs
    for expected in (
        "Free studio",
        "openstreetmap.org",
        booking.reference,
        "Bring a mat.",
        "Full refund 24h before",
        "/b/",
        "Confirmed",
    ):
        assert expected in text, expected
    assert "See, change or cancel your booking" in html

    calendar = invite(email)
    event = event_of(calendar)
    assert str(calendar["method"]) == "REQUEST"
    assert str(event["uid"]).startswith(f"booking-{booking.reference}@")
    assert event["sequence"] == 0
    assert event.decoded("dtstart") == soon["session"].starts_at
    assert event["dtstart"].to_ical().endswith(b"Z")  # UTC: one instant whatever the clocks do
    assert "ann@example.com" in str(event["attendee"]) and "mailto:" in str(event["organizer"])
    assert list(event.walk("VALARM"))
    assert [p.get_content_type() for p in email.walk()].count("text/calendar") == 2  # inline invite + .ics


def test_moving_then_cancelling_updates_the_same_invite(yoga, inbox):
    booking = booking_confirm(booking=hold_places(yoga["offering"], yoga["session"], 1), now=NOW)
    deliver(NOW)
    booking_reschedule(booking=booking, new_session=yoga["later"], now=NOW, by_customer=False)
    deliver(NOW)
    booking_cancel(booking=booking, now=NOW, by_customer=False)
    deliver(NOW)

    emails = mail(inbox)
    assert [subject(m).split(":")[0] for m in emails] == ["Confirmed", "Moved", "Cancelled"]
    events = [event_of(invite(m)) for m in emails]
    assert len({str(e["uid"]) for e in events}) == 1
    assert [e["sequence"] for e in events] == [0, 1, 2]
    assert [str(invite(m)["method"]) for m in emails] == ["REQUEST", "REQUEST", "CANCEL"]
    assert events[1].decoded("dtstart") == yoga["later"].starts_at


def test_an_email_overtaken_by_a_later_change_is_not_sent(yoga, inbox):
    booking = booking_confirm(booking=hold_places(yoga["offering"], yoga["session"], 1), now=NOW)
    booking_reschedule(booking=booking, new_session=yoga["later"], now=NOW, by_customer=False)
    deliver(NOW)  # the worker was away: both events are delivered only now
    assert [subject(m).split(":")[0] for m in mail(inbox)] == ["Moved"]


def test_a_cancellation_says_what_is_refunded(yoga, inbox):
    booking = booking_confirm(booking=hold_places(yoga["offering"], yoga["session"], 2), now=NOW)
    booking_money_update(booking=booking, paid=booking.total_amount, refunded=Decimal("0"), now=NOW)
    booking_cancel(booking=booking, now=NOW, by_customer=True)
    deliver(NOW)
    [cancelled] = [m for m in mail(inbox) if subject(m).startswith("Cancelled")]
    assert "We are refunding 24.00 GBP" in cancelled.get_body(preferencelist=("plain",)).get_content()


def test_the_stylist_hears_about_new_and_cancelled_appointments(salon, inbox):
    salon["ana"].email = "ana@salon.example"
    salon["ana"].save()
    requirement = salon["cut"].requirements.get()
    now = timezone.now()
    starts = (now + timedelta(days=2)).astimezone(LONDON).replace(hour=10, minute=0, second=0, microsecond=0)
    held = hold_slot(salon["cut"], starts, now=now, preferred={requirement.pk: salon["ana"].pk})
    booking = booking_confirm(booking=held, now=now)
    deliver(now)
    booking_cancel(booking=booking, now=now, by_customer=False)
    deliver(now)
    subjects = sorted(subject(m).split(":")[0] for m in mail(inbox, "ana@salon.example"))
    assert subjects == ["Appointment cancelled", "New appointment"]


def test_a_booking_on_the_day_the_clocks_go_back_shows_the_right_local_time(inbox):
    # 25 October 2026, London: BST ends at 02:00. A 10:00 class that day is at 10:00 GMT (10:00 UTC).
    studio = make.location()
    offering = make.class_offering(at=studio, price="0.00", horizon=timedelta(days=3650))
    starts = datetime(2026, 10, 25, 10, 0, tzinfo=UTC)
    session = make.session(offering=offering, starts_at=starts, capacity=5, now=starts - timedelta(days=7))
    hold_places(offering, session, 1, now=starts - timedelta(days=7))
    deliver(starts - timedelta(days=7))
    [email] = mail(inbox)
    assert "Sunday 25 October 2026, 10:00 GMT" in email.get_body(preferencelist=("plain",)).get_content()
    assert event_of(invite(email)).decoded("dtstart") == starts


def test_no_email_for_a_change_that_rolled_back(soon, inbox):
    with pytest.raises(RuntimeError), transaction.atomic():
        hold_places(soon["offering"], soon["session"], 1, now=soon["now"])
        raise RuntimeError("the request failed after booking")
    deliver(soon["now"])
    assert mail(inbox) == []
    assert not OutboxMessage.objects.exists()


def test_a_send_that_fails_half_way_resends_only_the_email_that_failed(salon, inbox):
    salon["ana"].email = "ana@salon.example"
    salon["ana"].save()
    inbox.refuse_once.add("ana@salon.example")  # the staff notice fails the first time
    requirement = salon["cut"].requirements.get()
    now = timezone.now()
    starts = (now + timedelta(days=2)).astimezone(LONDON).replace(hour=10, minute=0, second=0, microsecond=0)
    bo = CustomerDetails("Bo", "bo@example.com")
    held = hold_slot(salon["cut"], starts, now=now, preferred={requirement.pk: salon["ana"].pk}, who=bo)
    booking_confirm(booking=held, now=now)
    deliver(now)
    assert len(mail(inbox, "bo@example.com")) == 1 and mail(inbox, "ana@salon.example") == []
    failed = OutboxMessage.objects.get(topic="email.send", status="pending", attempts=1)
    assert "451" in failed.last_error
    deliver(now + timedelta(seconds=10))  # the retry, after its back-off
    assert len(mail(inbox, "bo@example.com")) == 1 and len(mail(inbox, "ana@salon.example")) == 1


def test_mail_written_while_redis_is_down_goes_out_when_it_is_back(soon, inbox, private_redis):
    with celery_broker(private_redis.url()):
        hold_places(
            soon["offering"], soon["session"], 1, now=soon["now"], who=CustomerDetails("Cy", "cy@example.com")
        )  # committed; nothing could be published
        assert mail(inbox) == []
        private_redis.ensure_started()
        with running_worker():
            for _ in range(3):  # what beat sends every few seconds
                outbox_sweep_task.delay()
            wait_until(lambda: mail(inbox, "cy@example.com"), timeout=30)
    assert len(mail(inbox, "cy@example.com")) == 1


def test_emails_share_one_connection_which_is_opened_again_when_the_server_hung_up(soon, inbox):
    import core.mail

    for name in ("Cy", "Di"):
        hold_places(
            soon["offering"],
            soon["session"],
            1,
            now=soon["now"],
            who=CustomerDetails(name, f"{name}@example.com"),
        )
    deliver(soon["now"])
    assert len(mail(inbox, "Cy@example.com")) == len(mail(inbox, "Di@example.com")) == 1
    assert inbox.greetings <= 1  # both over one connection (maybe opened by an earlier test)

    core.mail._connection.connection.sock.shutdown(socket.SHUT_RDWR)  # the server hung up while idle
    hold_places(
        soon["offering"], soon["session"], 1, now=soon["now"], who=CustomerDetails("Ed", "Ed@example.com")
    )
    before = inbox.greetings
    deliver(soon["now"])
    assert len(mail(inbox, "Ed@example.com")) == 1  # sent at once, not left for a retry
    assert inbox.greetings == before + 1
    assert not OutboxMessage.objects.filter(topic="email.send").exclude(status="delivered").exists()


class RefusingBroker:
    """A "Redis" on 127.0.0.1 that hangs up on every connection, counting them."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"

    def _serve(self) -> None:
        while True:
            try:
                peer, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            peer.close()


@pytest.fixture
def refusing_broker():
    broker = RefusingBroker()
    with celery_broker(broker.url()):
        yield broker
    broker.listener.close()


def test_with_redis_failing_only_the_first_customer_asks_it_and_every_booking_is_mailed_later(
    soon, inbox, refusing_broker
):
    """Each booking publishes its emails after commit. With Redis failing, the first customer's
    request finds out (one connection attempt, no retries); the next customers' requests do not try
    again, so they do not wait on it. Nothing is lost: the sweeper mails every one of them."""
    customers = [CustomerDetails(name, f"{name.lower()}@example.com") for name in ("Cy", "Di", "Ed")]
    hold_places(soon["offering"], soon["session"], 1, now=soon["now"], who=customers[0])
    tried = refusing_broker.connections
    assert 1 <= tried <= 2  # redis-py may reconnect once on a dropped connection, kombu does not retry
    for customer in customers[1:]:
        hold_places(soon["offering"], soon["session"], 1, now=soon["now"], who=customer)
    assert refusing_broker.connections == tried
    assert mail(inbox) == []

    deliver(soon["now"] + timedelta(seconds=1))  # what the sweeper does every few seconds
    assert [len(mail(inbox, customer.email)) for customer in customers] == [1, 1, 1]


def test_reminders_go_once_per_start_time_and_never_for_a_cancelled_booking(yoga, inbox):
    now = NOW
    mine = booking_confirm(booking=hold_places(yoga["offering"], yoga["session"], 1), now=now)
    theirs = booking_confirm(booking=hold_places(yoga["offering"], yoga["session"], 1), now=now)
    booking_cancel(booking=theirs, now=now, by_customer=False)
    day_before = yoga["session"].starts_at - timedelta(hours=24, minutes=-1)
    assert reminders_enqueue_due(now=day_before) == 1
    assert reminders_enqueue_due(now=day_before + timedelta(minutes=5)) == 0  # once
    deliver(day_before)
    reminders = [m for m in mail(inbox) if subject(m).startswith("Reminder")]
    assert [m["to"] for m in reminders] == [mine.customer.email]

    booking_reschedule(booking=mine, new_session=yoga["later"], now=now, by_customer=False)
    later_day_before = yoga["later"].starts_at - timedelta(hours=24, minutes=-1)
    assert reminders_enqueue_due(now=later_day_before) == 1  # the move re-armed it


def test_a_reminder_queued_before_a_cancellation_is_not_sent(yoga, inbox):
    now = NOW
    booking = booking_confirm(booking=hold_places(yoga["offering"], yoga["session"], 1), now=now)
    day_before = yoga["session"].starts_at - timedelta(hours=24, minutes=-1)
    deliver(now)
    inbox.clear()
    reminders_enqueue_due(now=day_before)
    booking_cancel(booking=booking, now=now, by_customer=False)
    deliver(day_before)
    assert not [m for m in mail(inbox) if subject(m).startswith("Reminder")]


def test_a_held_paid_booking_gets_a_pay_link_and_a_waitlist_offer_its_deadline(yoga, inbox):
    now = NOW
    hold_places(yoga["offering"], yoga["session"], 1, now=now, who=CustomerDetails("Di", "di@example.com"))
    deliver(now)
    [email] = mail(inbox, "di@example.com")
    assert subject(email).startswith("Complete your booking")
    assert "/pay/" in email.get_body(preferencelist=("plain",)).get_content()

    from booking.services import waitlist_join

    CapacityCounter.objects.filter(session=yoga["session"]).update(held=0, sold=10)
    entry = waitlist_join(
        offering=yoga["offering"],
        session=yoga["session"],
        now=now,
        quantity=1,
        customer=CustomerDetails("Ed", "ed@example.com"),
    )
    CapacityCounter.objects.filter(session=yoga["session"]).update(sold=9)
    from booking.services import waitlist_offer_next

    waitlist_offer_next(session_id=yoga["session"].pk, now=now)
    deliver(now)
    [offer] = mail(inbox, "ed@example.com")
    entry.refresh_from_db()
    assert subject(offer).startswith("A place is free for you")
    assert "yours until" in offer.get_body(preferencelist=("plain",)).get_content()


def test_the_add_to_calendar_download(client, soon):
    from booking.selectors import booking_manage_token

    booking = hold_places(soon["offering"], soon["session"], 1, now=soon["now"])
    response = client.get(f"/b/{booking_manage_token(booking=booking)}/calendar.ics")
    assert response["Content-Type"].startswith("text/calendar")
    assert str(event_of(Calendar.from_ical(response.content))["uid"]).startswith(
        f"booking-{booking.reference}"
    )
    page = client.get(f"/b/{booking_manage_token(booking=booking)}/").content.decode()
    assert "calendar.google.com" in page and "outlook.live.com" in page
