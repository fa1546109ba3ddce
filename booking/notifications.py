"""Emails and calendar invites about bookings, built from the booking as it is when they are sent.

Each email is its own outbox message (topic `email.send`), so a failure sending one (say, the staff
notice) never re-sends another that already went (the customer's confirmation). Invites are ICS
with a stable UID per booking and SEQUENCE = the booking's sequence, raised on every change, so a
calendar app updates the event in place and removes it on `METHOD:CANCEL`.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.mime.base import MIMEBase
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from icalendar import Alarm, Calendar, Event, vCalAddress, vText

from booking.models import Booking, BookingStatus
from booking.selectors import booking_manage_token
from core.times import machine_moment, venue_time
from inventory.models import Resource

SUBJECTS: dict[str, str] = {
    "confirmed": "Confirmed: {offering}, {when}",
    "awaiting_payment": "Complete your booking: {offering}, {when}",
    "payment_failed": "Your payment did not go through: {offering}",
    "rescheduled": "Moved: {offering}, now {when}",
    "cancelled": "Cancelled: {offering}, {when}",
    "waitlist_offer": "A place is free for you: {offering}, {when}",
    "balance_due": "Balance due: {offering}, {when}",
    "reminder": "Reminder: {offering}, {when}",
    "money_returned": "We could not complete your booking: {offering}",
    "staff_new": "New appointment: {offering}, {when} ({customer})",
    "staff_changed": "Appointment moved: {offering}, now {when} ({customer})",
    "staff_cancelled": "Appointment cancelled: {offering}, {when} ({customer})",
}
CUSTOMER_KINDS = {k for k in SUBJECTS if not k.startswith("staff_")}
INVITE_KINDS = {
    "confirmed": "REQUEST",
    "rescheduled": "REQUEST",
    "reminder": "REQUEST",
    "cancelled": "CANCEL",
    "staff_new": "REQUEST",
    "staff_changed": "REQUEST",
    "staff_cancelled": "CANCEL",
}

# Kinds of email added by apps above booking (ticketing's "your tickets"), sent only while the
# booking is confirmed.
CONFIRMED_ONLY_KINDS: set[str] = set()


def email_kind_register(kind: str, subject: str) -> None:
    """Let a higher app send its own email about a booking through `email.send` (templates/emails/<kind>)."""
    SUBJECTS[kind] = subject
    CUSTOMER_KINDS.add(kind)
    CONFIRMED_ONLY_KINDS.add(kind)


# Extra context for an email, provided by apps above booking (ticketing adds the QR codes).
_extras: list[Callable[[Booking, str, dict], dict[str, Any]]] = []


# Bookings whose customer confirmation a higher app sends itself, once it has what the email carries
# (ticketing: the tickets, so a class or event booking confirms in one email, not two).
_confirmation_carriers: list[Callable[[Booking], bool]] = []


def confirmation_carrier_register(carries: Callable[[Booking], bool]) -> Callable:
    """Let a higher app send the customer's "confirmed" email for the bookings *carries* says yes to."""
    _confirmation_carriers.append(carries)
    return carries


def confirmation_carried(booking: Booking) -> bool:
    return any(carries(booking) for carries in _confirmation_carriers)


def email_extras_provider(func: Callable[[Booking, str, dict], dict[str, Any]]) -> Callable:
    """Register a function adding context (and `attachments`) to booking emails, from a higher app."""
    _extras.append(func)
    return func


def _local(moment: datetime, zone: str) -> str:
    return venue_time(moment, zone, "long")


def _customer_time(moment: datetime, customer_zone: str, venue_zone: str) -> str:
    """The time in the customer's zone, when their clock would show something else than the venue's."""
    if (
        not customer_zone
        or customer_zone == venue_zone
        or customer_zone not in zoneinfo.available_timezones()
    ):
        return ""
    theirs = moment.astimezone(zoneinfo.ZoneInfo(customer_zone))
    if theirs.utcoffset() == moment.astimezone(zoneinfo.ZoneInfo(venue_zone)).utcoffset():
        return ""
    return _local(moment, customer_zone)


def site_url(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def staff_on(booking: Booking, items: list | None = None) -> list[Resource]:
    """The staff of a booking: the session's, or those allocated to the appointment (even if since
    released). One query; `items` saves another when the caller has loaded them already."""
    if booking.session_id:  # places in a session take no resource time of their own
        return list(Resource.objects.filter(kind=Resource.Kind.STAFF, sessions=booking.session_id).distinct())
    holders = [item.holder for item in (booking.items.all() if items is None else items)]
    return list(Resource.objects.filter(allocations__holder__in=holders, kind=Resource.Kind.STAFF).distinct())


def calendar_links(booking: Booking) -> dict[str, str]:
    """'Add to calendar' links: the ICS download, Google Calendar and Outlook on the web."""
    token = booking_manage_token(booking=booking)
    location = booking.offering.location
    fmt = "%Y%m%dT%H%M%SZ"
    details = f"Booking {booking.reference}. Manage it: {site_url(reverse('booking:detail', args=[token]))}"
    google = "https://calendar.google.com/calendar/render?" + urlencode(
        {
            "action": "TEMPLATE",
            "text": booking.offering.name,
            "details": details,
            "location": f"{location.name}, {location.address}",
            "dates": f"{booking.starts_at.astimezone(zoneinfo.ZoneInfo('UTC')):{fmt}}/"
            f"{booking.ends_at.astimezone(zoneinfo.ZoneInfo('UTC')):{fmt}}",
        }
    )
    outlook = "https://outlook.live.com/calendar/0/deeplink/compose?" + urlencode(
        {
            "path": "/calendar/action/compose",
            "rru": "addevent",
            "subject": booking.offering.name,
            "startdt": booking.starts_at.isoformat(),
            "enddt": booking.ends_at.isoformat(),
            "location": f"{location.name}, {location.address}",
            "body": details,
        }
    )
    return {"ics": site_url(reverse("booking:calendar", args=[token])), "google": google, "outlook": outlook}


def booking_ics(*, booking: Booking, method: str, now: datetime, attendee_email: str | None = None) -> bytes:
    """The booking as an iCalendar invite (REQUEST, or CANCEL), its times in UTC."""
    location = booking.offering.location
    calendar = Calendar()
    calendar.add("prodid", f"-//{settings.BUSINESS_NAME}//Booking//EN")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = Event()
    domain = urlsplit(settings.SITE_URL).hostname or "localhost"
    event.add("uid", f"booking-{booking.reference}@{domain}")
    event.add("sequence", booking.sequence)
    event.add("dtstamp", now)
    event.add("dtstart", machine_moment(booking.starts_at))  # UTC: see core/times.py
    event.add("dtend", machine_moment(booking.ends_at))
    event.add("summary", booking.offering.name)
    event.add("location", f"{location.name}, {location.address}")
    token = booking_manage_token(booking=booking)
    event.add(
        "description",
        f"Booking {booking.reference}.\nManage it: {site_url(reverse('booking:detail', args=[token]))}",
    )
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    organizer = vCalAddress(f"mailto:{settings.DEFAULT_FROM_EMAIL}")
    organizer.params["cn"] = vText(settings.BUSINESS_NAME)
    event["organizer"] = organizer
    attendee = vCalAddress(f"mailto:{attendee_email or booking.customer.email}")
    attendee.params["cn"] = vText(booking.customer.name)
    attendee.params["role"] = vText("REQ-PARTICIPANT")
    attendee.params["partstat"] = vText("ACCEPTED")
    event.add("attendee", attendee)
    if method != "CANCEL":
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", f"{booking.offering.name} starts in an hour")
        alarm.add("trigger", timedelta(hours=-1))
        event.add_component(alarm)
    calendar.add_component(event)
    return calendar.to_ical()


@dataclass
class Email:
    message: EmailMultiAlternatives
    kind: str


def email_build(
    *, booking: Booking, kind: str, to: str, now: datetime, extra: dict[str, Any] | None = None
) -> Email:
    """Compose one email about *booking* (HTML and plain text, with the invite where it belongs)."""
    extra = extra or {}
    location = booking.offering.location
    zone = location.time_zone
    token = booking_manage_token(booking=booking)
    when = _local(booking.starts_at, zone)
    customer_zone = booking.customer.time_zone
    items = list(booking.items.select_related("ticket_type", "zone", "seat"))
    context: dict[str, Any] = {
        "booking": booking,
        "items": items,
        "offering": booking.offering,
        "location": location,
        "when": when,
        "until": venue_time(booking.ends_at, zone, "time"),
        "customer_when": _customer_time(booking.starts_at, customer_zone, zone),
        "map_url": "https://www.openstreetmap.org/search?query="
        + quote(f"{location.name}, {location.address}"),
        "staff": staff_on(booking, items),
        "manage_url": site_url(reverse("booking:detail", args=[token])),
        "pay_url": site_url(reverse(settings.BOOKING_CHECKOUT_URL_NAME, args=[token]))
        if settings.BOOKING_CHECKOUT_URL_NAME
        else "",
        "calendar": calendar_links(booking),
        "business_name": settings.BUSINESS_NAME,
        "support_email": settings.SUPPORT_EMAIL,
        "support_phone": settings.SUPPORT_PHONE,
        "hold_until": _local(booking.hold_expires_at, zone) if booking.hold_expires_at else "",
        "admin_url": site_url(reverse("admin:booking_booking_change", args=[booking.pk])),
        "kind": kind,
        "attachments": [],
        **extra,
    }
    for provider in _extras:
        context.update(provider(booking, kind, {**extra, "to": to}) or {})
    subject = SUBJECTS[kind].format(offering=booking.offering.name, when=when, customer=booking.customer.name)
    text = render_to_string(f"emails/{kind}.txt", context)
    html = render_to_string(f"emails/{kind}.html", context)
    message = EmailMultiAlternatives(
        subject=f"{subject} · {settings.BUSINESS_NAME}",
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        reply_to=[settings.SUPPORT_EMAIL],
        headers={"X-Booking-Reference": booking.reference, "X-Booking-Email": kind},
    )
    message.attach_alternative(html, "text/html")
    method = INVITE_KINDS.get(kind)
    if method and not (kind == "reminder" and booking.status != BookingStatus.CONFIRMED):
        ics = booking_ics(booking=booking, method=method, now=now, attendee_email=to)
        message.attach_alternative(ics.decode(), f"text/calendar; method={method}")
        message.attach(f"{booking.reference}.ics", ics, f"text/calendar; method={method}")
    for attachment in context["attachments"]:
        if isinstance(attachment, MIMEBase):
            message.attach(attachment)
        else:
            message.attach(*attachment)
    return Email(message, kind)
