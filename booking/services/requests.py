"""What a customer asks for: their details (validated) and the places they want. Locks nothing."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from booking.services.errors import InvalidBooking
from inventory.capacity import (
    Place,
)

# --- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerDetails:
    name: str
    email: str
    phone: str = ""
    time_zone: str = ""

    def validated(self) -> CustomerDetails:
        name, email = self.name.strip(), self.email.strip()
        if not name:
            raise InvalidBooking("Please tell us your name.")
        try:
            validate_email(email)
        except ValidationError:
            raise InvalidBooking(f"{email or 'That'} does not look like an email address.") from None
        return CustomerDetails(
            name=name[:150], email=email, phone=self.phone.strip()[:40], time_zone=self.time_zone
        )


@dataclass(frozen=True)
class TicketRequest:
    """One place asked for: a ticket type and zone (events), a seat (seated zones), and who it is for."""

    ticket_type_id: int | None = None
    zone_id: int | None = None
    seat_id: int | None = None
    attendee_name: str = ""
    attendee_email: str = ""


@dataclass(frozen=True)
class _Line:
    place: Place
    price: Decimal
    price_name: str
    attendee_name: str
    attendee_email: str
    ticket_type_id: int | None
