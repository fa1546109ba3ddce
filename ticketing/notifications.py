"""Ticket emails, sent through booking's `email.send` (one outbox message per email).

The confirmation of a class or event booking carries its tickets: each QR code inline and as a PNG
attachment, plus a link to the ticket page. "Your tickets" does the same for codes issued later (a
move, a renamed attendee, a revoked code); reminders link to the tickets. A ticket handed to someone
else reaches them alone, without the booker's "manage booking" link.
"""

from email.mime.image import MIMEImage

from django.urls import reverse

from booking.notifications import (
    confirmation_carrier_register,
    email_extras_provider,
    email_kind_register,
    site_url,
)
from booking.selectors import booking_manage_token
from ticketing.models import Ticket
from ticketing.qr import qr_png
from ticketing.services import TICKETED_KINDS, booking_is_ticketed

email_kind_register("tickets", "Your tickets: {offering}, {when}")
email_kind_register("ticket_resold", "Your ticket was resold: {offering}, {when}")


def _inline_png(ticket: Ticket) -> MIMEImage:
    image = MIMEImage(qr_png(ticket.payload, box_size=6), "png")
    image.add_header("Content-ID", f"<ticket-{ticket.code}>")
    image.add_header("Content-Disposition", "inline", filename=f"ticket-{ticket.code}.png")
    return image


@confirmation_carrier_register
def confirmation_carries_tickets(booking) -> bool:
    """The confirmation of a ticketed booking is sent once its tickets are issued, carrying them."""
    return booking_is_ticketed(booking)


@email_extras_provider
def ticket_email_context(booking, kind: str, extra: dict) -> dict:
    if booking.offering.kind not in TICKETED_KINDS:
        return {}
    tickets = []
    if kind == "tickets" or (kind == "confirmed" and "ticket_ids" in extra):
        tickets = list(
            Ticket.objects.filter(pk__in=extra.get("ticket_ids", []), status=Ticket.Status.VALID)
            .select_related("ticket_type", "zone", "seat")
            .order_by("id")
        )
    if tickets or kind == "tickets":
        for ticket in tickets:
            ticket.url = site_url(reverse("ticketing:ticket", args=[ticket.access_key]))
        return {
            "tickets": tickets,
            "is_booker": extra.get("to", "").lower() == booking.customer.email.lower(),
            "attachments": [_inline_png(t) for t in tickets],
        }
    if kind in ("confirmed", "reminder", "rescheduled"):
        # codes changed since the email was queued, or it does not carry them: the page has them
        url = site_url(reverse("ticketing:booking_tickets", args=[booking_manage_token(booking=booking)]))
        later = " (the new codes also arrive in a separate email)" if kind == "rescheduled" else ""
        return {
            "tickets_html": f'<p><a href="{url}">Your tickets with their QR codes</a>{later}.</p>',
            "tickets_text": f"Your tickets with their QR codes{later}: {url}\n",
        }
    return {}
