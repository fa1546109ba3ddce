"""Bookings in the demo: a salon day already under way, so the day schedule, the booking list and a
booking's timeline have something to show. Made through the booking services, as customers would;
idempotent by their keys (running the seed again returns the same bookings)."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from booking.services import (
    CustomerDetails,
    booking_confirm,
    booking_flag_attention,
    booking_hold_appointment,
    booking_money_update,
)
from core.errors import ApplicationError
from inventory.locks import CapacityBusy
from inventory.models import Location, Offering
from inventory.selectors import appointment_slot_list

CUSTOMERS = [
    ("Priya Shah", "priya@example.com"),
    ("Omar Haddad", "omar@example.com"),
    ("Lena Fischer", "lena@example.com"),
    ("Grace Liu", "grace@example.com"),
    ("Tom Becker", "tom@example.com"),
    ("Ines Duarte", "ines@example.com"),
]


def seed(*, now: datetime, log) -> None:
    salon = Location.objects.filter(slug="lumen-salon").first()
    offerings = list(Offering.objects.filter(location=salon, kind=Offering.Kind.APPOINTMENT).order_by("slug"))
    if salon is None or not offerings:
        return
    zone = ZoneInfo(salon.time_zone)
    made = 0
    for n, (name, email) in enumerate(CUSTOMERS):
        offering = offerings[n % len(offerings)]
        slots = []
        for ahead in range(1 + n // 3, 9):  # the next day the salon is open (it closes on Sundays)
            start = datetime.combine((now.astimezone(zone) + timedelta(days=ahead)).date(), time(0), zone)
            slots = appointment_slot_list(
                offering=offering, start=start, end=start + timedelta(days=1), now=now
            )
            if len(slots) > 8:
                break
        if not slots:
            continue
        slot = slots[min(len(slots) - 1, (n % 3) * 4)]
        try:
            booking = booking_hold_appointment(
                offering=offering,
                starts_at=slot.starts_at,
                customer=CustomerDetails(name=name, email=email),
                idempotency_key=f"demo-appointment-{n}",
                now=now,
            )
            booking = booking_confirm(booking=booking, now=now, actor="demo")
            if booking.amount_paid < booking.total_amount:  # paid at the desk when they booked
                booking = booking_money_update(
                    booking=booking, paid=booking.total_amount, refunded=0, now=now
                )
        except (ApplicationError, CapacityBusy):
            continue  # that time went (a second seed on another day): the demo has enough without it
        if n == 2 and not booking.needs_attention:
            booking_flag_attention(
                booking=booking, now=now, reason="Asked by phone to move to the afternoon; call back."
            )
        made += 1
    log(f"demo: {made} salon appointments on the next open days (one needs attention)")
