"""The booking form: who is booking and what, turned into one service call.

One form serves the three kinds of offering; it adds the fields each needs (a number of places for
a class, ticket quantities, zones and seats for an event, a stylist for an appointment). Rules stay
in `booking.services`; the form only parses and gives friendly messages for malformed input.
"""

import uuid
from datetime import datetime

from django import forms

from booking.models import Booking
from booking.services import (
    CustomerDetails,
    TicketRequest,
    booking_hold_appointment,
    booking_hold_session,
    waitlist_join,
)
from inventory.models import Offering, Seat, Session


class BookingForm(forms.Form):
    name = forms.CharField(
        label="Your name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    email = forms.EmailField(
        label="Email",
        help_text="Your confirmation and manage link go here.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    phone = forms.CharField(
        label="Phone (optional)",
        max_length=40,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "tel"}),
    )
    notes = forms.CharField(
        label="Anything we should know? (optional)",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    time_zone = forms.CharField(required=False, widget=forms.HiddenInput)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=80)

    def __init__(
        self,
        *args,
        offering: Offering,
        session: Session | None = None,
        starts_at: datetime | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.offering, self.session, self.starts_at = offering, session, starts_at
        self.fields["idempotency_key"].initial = uuid.uuid4().hex
        if offering.kind == Offering.Kind.CLASS:
            self.fields["quantity"] = forms.TypedChoiceField(
                label="Places",
                coerce=int,
                initial=1,
                choices=[(n, str(n)) for n in range(1, offering.max_places_per_booking + 1)],
            )
        elif offering.kind == Offering.Kind.EVENT:
            self.ticket_types = list(
                offering.ticket_types.prefetch_related("zones").order_by("sort_order", "name")
            )
            for tt in self.ticket_types:
                self.fields[f"qty_{tt.pk}"] = forms.IntegerField(
                    label=tt.name,
                    min_value=0,
                    max_value=offering.max_places_per_booking,
                    initial=0,
                    required=False,
                )
            self.fields["seats"] = forms.ModelMultipleChoiceField(
                queryset=Seat.objects.filter(zone__offering=offering),
                required=False,
                label="Seats",
                widget=forms.CheckboxSelectMultiple,
            )
        else:
            for requirement in offering.requirements.prefetch_related("candidates").filter(
                customer_chooses=True
            ):
                choices = [("", f"Any {requirement.label.lower()}")]
                choices += [(str(r.pk), r.name) for r in requirement.candidates.filter(is_active=True)]
                self.fields[f"resource_{requirement.pk}"] = forms.ChoiceField(
                    label=requirement.label, choices=choices, required=False
                )

    def customer(self) -> CustomerDetails:
        data = self.cleaned_data
        return CustomerDetails(
            name=data["name"], email=data["email"], phone=data["phone"], time_zone=data["time_zone"]
        )

    def tickets(self) -> list[TicketRequest]:
        data = self.cleaned_data
        attendees = [name.strip() for name in self.data.getlist("attendee") if name.strip()]
        if self.offering.kind == Offering.Kind.CLASS:
            count = data["quantity"]
            return [
                TicketRequest(attendee_name=(attendees[n] if n < len(attendees) else ""))
                for n in range(count)
            ]
        seats = {seat.zone_id: [] for seat in data["seats"]}
        for seat in sorted(data["seats"], key=lambda s: (s.row, s.number)):
            seats[seat.zone_id].append(seat.pk)
        tickets = []
        for tt in self.ticket_types:
            zones = [z.pk for z in tt.zones.all()]
            for _ in range(data.get(f"qty_{tt.pk}") or 0):
                zone = zones[0] if len(zones) == 1 else None
                seat = seats[zone].pop(0) if seats.get(zone) else None
                name = attendees[len(tickets)] if len(tickets) < len(attendees) else ""
                tickets.append(
                    TicketRequest(ticket_type_id=tt.pk, zone_id=zone, seat_id=seat, attendee_name=name)
                )
        if not tickets:
            self.add_error(None, "Choose at least one ticket.")
        leftover = [s for zone_seats in seats.values() for s in zone_seats]
        if leftover:
            self.add_error("seats", "You chose more seats than tickets for that area.")
        return tickets

    def preferred(self) -> dict[int, int]:
        return {
            int(name.removeprefix("resource_")): int(value)
            for name, value in self.cleaned_data.items()
            if name.startswith("resource_") and value
        }

    def place(self, *, now: datetime, counters: list | None = None) -> Booking:
        """Make the booking this form describes: one call to the booking service. *counters*: the
        session's, as the view read them without a lock (the service need not read them again)."""
        common = {
            "customer": self.customer(),
            "idempotency_key": self.cleaned_data["idempotency_key"],
            "now": now,
            "notes": self.cleaned_data["notes"],
        }
        if self.offering.kind == Offering.Kind.APPOINTMENT:
            return booking_hold_appointment(
                offering=self.offering, starts_at=self.starts_at, preferred=self.preferred() or None, **common
            )
        tickets = self.tickets()
        if self.errors:
            raise forms.ValidationError("invalid tickets")
        return booking_hold_session(
            offering=self.offering, session=self.session, tickets=tickets, known_counters=counters, **common
        )


class WaitlistForm(forms.Form):
    name = forms.CharField(label="Your name", max_length=150)
    email = forms.EmailField(label="Email", help_text="We email you when places free up.")
    quantity = forms.IntegerField(label="Places wanted", min_value=1, initial=1)

    def join(self, *, offering: Offering, session: Session, now: datetime):
        data = self.cleaned_data
        return waitlist_join(
            offering=offering,
            session=session,
            quantity=data["quantity"],
            now=now,
            customer=CustomerDetails(name=data["name"], email=data["email"]),
        )
