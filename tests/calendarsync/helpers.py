"""A Paris salon with one stylist, Camille, whose own calendar gets connected; times in Paris."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from booking.services import booking_confirm
from calendarsync.models import CalendarConnection
from calendarsync.providers.microsoft import auth_flow_finish, auth_flow_start
from calendarsync.services import calendar_sync, connection_create
from core.outbox.services import outbox_sweep
from inventory.selectors import appointment_slot_list
from tests.booking.helpers import hold_slot, someone
from tests.inventory import factories as make

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # Tuesday 08:00 in Paris
WEDNESDAY = date(2026, 12, 2)
STAFF = "camille@example.com"
ALL_DAY = [f"{h:02d}:00" for h in range(9, 17)]


def paris(hour: int, minute: int = 0, day: date = WEDNESDAY) -> datetime:
    return datetime.combine(day, time(hour, minute), PARIS)


def salon_build() -> dict:
    atelier = make.location(name="Atelier Rivoli", time_zone="Europe/Paris")
    camille = make.resource(at=atelier, name="Camille", now=NOW)  # 09:00–17:00 every day, Paris time
    camille.email = STAFF
    camille.save(update_fields=["email"])
    cut = make.appointment(at=atelier, needs=[[camille]], name="Coupe", minutes=60, interval=60, price="0.00")
    return {"camille": camille, "cut": cut}


def free_times(salon, day: date = WEDNESDAY) -> list[str]:
    """The times a customer can book with Camille that day, as the booking page lists them."""
    start = datetime.combine(day, time(0), PARIS)
    slots = appointment_slot_list(offering=salon["cut"], start=start, end=start + timedelta(days=1), now=NOW)
    return [s.starts_at.astimezone(PARIS).strftime("%H:%M") for s in slots]


def sync(connection) -> None:
    calendar_sync(connection_id=connection.pk, now=NOW)


def book(salon, starts_at):
    """Zoé books Camille; the outbox delivers what follows (emails, the calendar push)."""
    booking = hold_slot(salon["cut"], starts_at, who=someone("Zoé Martin"), now=NOW)
    booking_confirm(booking=booking, now=NOW)
    outbox_sweep(now=NOW)
    return booking


def google_connect(google, resource, *, mode=CalendarConnection.Mode.TWO_WAY, now=NOW) -> CalendarConnection:
    """Camille granted access (the browser round trip is its own test in test_google_sync.py)."""
    tokens = google.issue_tokens(STAFF, client_id="booking.apps.googleusercontent.com")
    return connection_create(
        resource=resource,
        provider="google",
        mode=mode,
        credentials={
            "token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "account": STAFF,
        },
        account=STAFF,
        now=now,
    )


def microsoft_connect(
    microsoft, resource, *, mode=CalendarConnection.Mode.TWO_WAY, now=NOW
) -> CalendarConnection:
    """Camille signed in with Microsoft and consented (the admin round trip is its own test)."""
    flow = auth_flow_start(redirect_uri="http://testserver/calendar/oauth/callback/")
    credentials = auth_flow_finish(flow=flow, query=microsoft.authorization_response(flow["auth_uri"]))
    return connection_create(
        resource=resource,
        provider="microsoft",
        mode=mode,
        credentials=credentials,
        account=credentials["account"],
        now=now,
    )
