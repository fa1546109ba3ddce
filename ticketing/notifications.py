"""Ticket emails, sent through booking's `email.send` (one outbox message per email).

"Your tickets" carries each ticket's QR code inline and as a PNG attachment, plus a link to the
ticket page; the booking confirmation links to the tickets. A ticket handed to someone else reaches
them alone, without the booker's "manage booking" link.
"""

from email.mime.image import MIMEImage

from django.urls import reverse

from booking.notifications import email_extras_provider, email_kind_register, site_url
from booking.selectors import booking_manage_token
from ticketing.models import Ticket
from ticketing.qr import qr_png
from ticketing.services import TICKETED_KINDS

email_kind_register("tickets", "Your tickets: {offering}, {when}")
email_kind_register("ticket_resold", "Your ticket was resold: {offering}, {when}")


def _inline_png(ticket: Ticket) -> MIMEImage:
    image = MIMEImage(qr_png(ticket.payload, box_size=6), "png")
    image.add_header("Content-ID", f"<ticket-{ticket.code}>")
    image.add_header("Content-Disposition", "inline", filename=f"ticket-{ticket.code}.png")
    return image


@email_extras_provider
def ticket_email_context(booking, kind: str, extra: dict) -> dict:
    if booking.offering.kind not in TICKETED_KINDS:
        return {}
    if kind == "tickets":
        tickets = list(
            Ticket.objects.filter(pk__in=extra.get("ticket_ids", []), status=Ticket.Status.VALID)
            .select_related("ticket_type", "zone", "seat")
            .order_by("id")
        )
        for ticket in tickets:
            ticket.url = site_url(reverse("ticketing:ticket", args=[ticket.access_key]))
        return {
            "tickets": tickets,
            "is_booker": extra.get("to", "").lower() == booking.customer.email.lower(),
            "attachments": [_inline_png(t) for t in tickets],
        }
    if kind in ("confirmed", "reminder", "rescheduled"):
        url = site_url(reverse("ticketing:booking_tickets", args=[booking_manage_token(booking=booking)]))
        return {
            "tickets_html": f'<p><a href="{url}">Your tickets with their QR codes</a> '
            "(they also arrive in a separate email).</p>",
            "tickets_text": f"Your tickets with their QR codes: {url}\n",
        }
    return {}
