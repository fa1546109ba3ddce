"""Tickets follow their booking: issued on confirmation, revoked on cancellation, re-issued on a change.

Every ticket's QR code is decoded with a real decoder (zxing-cpp) and must read back exactly the
signed payload, which verifies with the event's public key alone (what a door phone holds).
"""

import io
from datetime import timedelta

import pytest
import zxingcpp
from PIL import Image

from booking.models import BookingStatus
from booking.services import (
    TicketRequest,
    booking_attendees_update,
    booking_cancel,
    booking_confirm,
    booking_reschedule,
)
from core.audit.models import TimelineEntry
from core.outbox.services import outbox_sweep
from tests.booking.helpers import NOW, hold_places
from tests.ticketing.helpers import adults, paid_tickets
from ticketing import signing
from ticketing.models import CheckInList, Ticket
from ticketing.qr import qr_png
from ticketing.selectors import public_key_of_session
from ticketing.services import ticket_revoke, tickets_sync

pytestmark = pytest.mark.django_db(transaction=True)


def deliver(now=NOW, rounds=4):
    """What the worker does: deliver the events, then what they queued (tickets, then their email)."""
    for _ in range(rounds):
        outbox_sweep(now=now + timedelta(seconds=1))


def decode(png: bytes) -> str:
    [found] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return found.text


def valid_tickets(booking):
    return list(Ticket.objects.filter(booking=booking, status=Ticket.Status.VALID).order_by("id"))


def test_a_confirmed_booking_gets_one_ticket_per_attendee_by_email_with_readable_qr_codes(concert, inbox):
    seats = concert["seats"]
    booking = hold_places(
        concert["offering"],
        concert["session"],
        tickets=[
            TicketRequest(
                ticket_type_id=concert["adult"].pk,
                zone_id=concert["stalls"].pk,
                seat_id=seats["A1"].pk,
                attendee_name="Ana Smith",
            ),
            TicketRequest(
                ticket_type_id=concert["adult"].pk,
                zone_id=concert["stalls"].pk,
                seat_id=seats["A2"].pk,
                attendee_name="Ben Jones",
            ),
        ],
    )
    booking_confirm(booking=booking, now=NOW)
    deliver()

    tickets = valid_tickets(booking)
    assert [(t.holder_name, t.ticket_type.name, t.zone.name, t.seat.label) for t in tickets] == [
        ("Ana Smith", "Adult", "Stalls", "A1"),
        ("Ben Jones", "Adult", "Stalls", "A2"),
    ]
    key = public_key_of_session(session_id=concert["session"].pk)
    for ticket in tickets:
        assert signing.verify(payload=ticket.payload, public_key=key) == (ticket.pk, concert["session"].pk)
        assert len(ticket.payload) <= 110  # a version 6 QR code: large modules on a phone screen

    # one email: the confirmation carries the tickets, with the invite
    [email] = inbox.messages
    assert str(email["subject"]).strip().startswith("Confirmed")
    images = [p for p in email.iter_attachments() if p.get_content_type() == "image/png"]
    assert sorted(decode(p.get_payload(decode=True)) for p in images) == sorted(t.payload for t in tickets)
    assert any(p.get_content_type() == "text/calendar" for p in email.iter_attachments())
    text = email.get_body(("plain",)).get_content()
    assert "You're booked" in text and "Ana Smith" in text and "seat A1" in text and tickets[0].code in text
    html = email.get_body(("html",)).get_content()
    assert f"cid:ticket-{tickets[0].code}" in html and f"/t/{tickets[1].access_key}/" in html
    assert CheckInList.objects.filter(session=concert["session"]).exists()


def test_a_ticketed_confirmation_queues_no_work_for_booking_notifications(yoga):
    from core.models import OutboxMessage

    booking = booking_confirm(booking=hold_places(yoga["offering"], yoga["session"]), now=NOW)
    confirmed = OutboxMessage.objects.filter(topic="booking.confirmed", payload__booking_id=booking.pk)
    handlers = set(confirmed.values_list("handler", flat=True))
    assert "ticketing.sync.booking.confirmed" in handlers  # sends the confirmation, with the tickets
    assert "booking.notify.booking.confirmed" not in handlers  # would have nothing left to send


def test_tickets_synced_twice_for_one_confirmation_send_one_confirmation(concert, inbox):
    booking, tickets = paid_tickets(concert["offering"], concert["session"], tickets=adults(concert, 2))
    tickets_sync(booking_id=booking.pk, now=NOW, reason="confirmed")
    deliver()
    [email] = [m for m in inbox.messages if str(m["subject"]).strip().startswith("Confirmed")]
    assert all(t.code in email.get_body(("plain",)).get_content() for t in tickets)


def test_an_attendee_with_their_own_email_gets_their_ticket_and_the_booker_the_confirmation(yoga, inbox):
    attendees = [
        TicketRequest(attendee_name="Ana Smith"),
        TicketRequest(attendee_name="Cara Lee", attendee_email="cara@example.com"),
    ]
    booking = hold_places(yoga["offering"], yoga["session"], tickets=attendees)
    booking_confirm(booking=booking, now=NOW)
    deliver()
    ana, cara = valid_tickets(booking)
    [confirmation] = [m for m in inbox.messages if booking.customer.email in m["to"]]
    assert ana.code in confirmation.get_body(("plain",)).get_content()
    [theirs] = [m for m in inbox.messages if "cara@example.com" in m["to"]]
    body = theirs.get_body(("plain",)).get_content()
    assert str(theirs["subject"]).strip().startswith("Your tickets")
    assert cara.code in body and ana.code not in body and booking.reference not in body


def test_the_qr_image_decodes_to_exactly_the_signed_payload(concert, client):
    _, [ticket] = paid_tickets(concert["offering"], concert["session"], tickets=adults(concert, 1))
    png = client.get(f"/t/{ticket.access_key}/qr.png")
    assert png["Content-Type"] == "image/png"
    assert decode(png.content) == ticket.payload
    assert decode(qr_png(ticket.payload, box_size=4)) == ticket.payload  # small, as printed in an email


def test_issuing_again_changes_nothing(concert):
    booking, tickets = paid_tickets(concert["offering"], concert["session"], tickets=adults(concert, 2))
    changes = tickets_sync(booking_id=booking.pk, now=NOW, reason="confirmed")
    assert changes.issued == [] and changes.revoked == []
    assert valid_tickets(booking) == tickets


def test_cancelling_revokes_every_code(concert, inbox):
    booking, _ = paid_tickets(concert["offering"], concert["session"], tickets=adults(concert, 2))
    booking_cancel(booking=booking, now=NOW, by_customer=True)
    deliver()
    assert valid_tickets(booking) == []
    assert {t.status for t in Ticket.objects.filter(booking=booking)} == {"revoked"}
    entry = TimelineEntry.objects.filter(action="ticketing.tickets.revoked").get()
    assert entry.data["reason"] == "the booking was cancelled" and len(entry.data["tickets"]) == 2


def test_moving_to_another_date_replaces_the_codes(yoga, inbox):
    booking, [old] = paid_tickets(yoga["offering"], yoga["session"])
    booking_reschedule(booking=booking, new_session=yoga["later"], now=NOW, by_customer=True)
    deliver()
    old.refresh_from_db()
    [new] = valid_tickets(booking)
    assert old.status == "revoked" and old.replaced_by == new
    assert new.session == yoga["later"] and new.payload != old.payload
    assert signing.read(new.payload)[1] == yoga["later"].pk
    assert any(str(m["subject"]).strip().startswith("Your tickets") for m in inbox.messages)


def test_renaming_an_attendee_reissues_only_their_ticket(yoga, flexible):
    flexible.attendee_names_editable = True
    flexible.save()
    booking, [first, second] = paid_tickets(yoga["offering"], yoga["session"], 2)
    booking_attendees_update(
        booking=booking, names={second.booking_item_id: "Cara Lee"}, now=NOW, by_customer=True
    )
    deliver()
    kept, renamed = valid_tickets(booking)
    assert kept == first
    assert renamed.holder_name == "Cara Lee" and renamed.pk != second.pk


def test_staff_can_revoke_a_shared_code_and_the_holder_gets_a_new_one(concert, inbox, admin_user):
    _, [ticket] = paid_tickets(concert["offering"], concert["session"], tickets=adults(concert, 1))
    ticket_revoke(ticket=ticket, now=NOW, reason="photo posted online", acting_user=admin_user)
    deliver()
    ticket.refresh_from_db()
    assert ticket.status == "revoked" and "photo posted online" in ticket.revoke_reason
    assert ticket.replaced_by.status == "valid" and ticket.replaced_by.seat_id == ticket.seat_id
    bodies = [
        m.get_body(("plain",)).get_content() for m in inbox.messages if "Your tickets" in str(m["subject"])
    ]
    [new_ticket_email] = [b for b in bodies if "no longer works" in b]
    assert ticket.replaced_by.code in new_ticket_email and ticket.code not in new_ticket_email


def test_an_unconfirmed_or_appointment_booking_has_no_tickets(yoga, salon):
    held = hold_places(yoga["offering"], yoga["session"])
    assert tickets_sync(booking_id=held.pk, now=NOW, reason="held").issued == []
    assert held.status == BookingStatus.HELD and not Ticket.objects.exists()


def test_the_ticket_page_shows_the_code_and_a_revoked_one_says_so(concert, client):
    booking, [ticket] = paid_tickets(concert["offering"], concert["session"], tickets=adults(concert, 1))
    page = client.get(f"/t/{ticket.access_key}/").content.decode()
    assert "<svg" in page and ticket.code in page and ticket.holder_name in page and "Stalls" in page
    printable = client.get(f"/t/{ticket.access_key}/?print=1").content.decode()
    assert "Print this ticket" in printable and ticket.code in printable and "Hall" in printable

    booking_cancel(booking=booking, now=NOW, by_customer=True)
    tickets_sync(booking_id=booking.pk, now=NOW, reason="cancelled")
    page = client.get(f"/t/{ticket.access_key}/").content.decode()
    assert "no longer valid" in page and "<svg" not in page
    assert client.get(f"/t/{ticket.access_key}/qr.png").status_code == 404
    assert client.get("/t/not-a-ticket/").status_code == 404


def test_the_booker_sees_all_tickets_from_the_booking_page(concert, client):
    from booking.selectors import booking_manage_token

    booking, tickets = paid_tickets(concert["offering"], concert["session"], tickets=adults(concert, 2))
    token = booking_manage_token(booking=booking)
    detail = client.get(f"/b/{token}/").content.decode()
    assert f"/b/{token}/tickets/" in detail
    page = client.get(f"/b/{token}/tickets/").content.decode()
    assert all(t.code in page for t in tickets) and page.count("<svg") == 2
