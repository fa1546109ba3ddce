"""Holding places: in a class or event session (ticket types, zones, seats) and an appointment's time
with the resources it needs. The rule it owns: never more held or sold than capacity, checked under
`inventory.locks.lock_session_counters` / `lock_resource_units` (key order, once per transaction),
with the database's CHECK and exclusion constraints as the backstop.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from booking.models import (
    HOLDING_STATUSES,
    Booking,
    BookingItem,
    BookingStatus,
    Customer,
)
from booking.services._shared import (
    _booking_opened,
    _check_session_window,
    _check_window,
    _customer_for,
    _existing_for_key,
    _in_one_transaction,
    _require_key,
)
from booking.services.errors import InvalidBooking
from booking.services.expiry import _release_expired_on_resources, _release_expired_on_session
from booking.services.requests import CustomerDetails, TicketRequest, _Line
from core.transactions import require_atomic
from inventory.capacity import (
    Place,
    appointment_candidate_resource_ids,
    appointment_time_take,
    seats_best_available,
    session_places_check,
    session_places_demand,
    session_places_take,
)
from inventory.errors import SoldOut
from inventory.locks import lock_resource_units, lock_session_counters, session_counters_take
from inventory.models import CapacityCounter, Offering, Seat, Session, TicketType
from inventory.selectors import price_in_force

# --- holding places in a class or event session -------------------------------------------------


def _session_lines(
    *,
    offering: Offering,
    session: Session,
    tickets: list[TicketRequest],
    customer: CustomerDetails,
    now: datetime,
) -> list[_Line]:
    if not offering.is_published or offering.kind == Offering.Kind.APPOINTMENT:
        raise InvalidBooking(f"{offering.name} cannot be booked by session.")
    if session.offering_id != offering.pk:
        raise InvalidBooking(f"That session is not a session of {offering.name}.")
    if session.status != Session.Status.SCHEDULED:
        raise InvalidBooking("This session has been cancelled.")
    _check_session_window(offering=offering, session=session, now=now)
    if not tickets:
        raise InvalidBooking("Choose at least one place.")
    if len(tickets) > offering.max_places_per_booking:
        raise InvalidBooking(f"You can book at most {offering.max_places_per_booking} places at once.")

    if offering.kind == Offering.Kind.CLASS:
        if any(t.ticket_type_id or t.zone_id or t.seat_id for t in tickets):
            raise InvalidBooking(f"{offering.name} has no ticket types, zones or seats to choose.")
        return [
            _Line(
                Place(),
                offering.price,
                "",
                (t.attendee_name or customer.name).strip()[:150],
                t.attendee_email,
                None,
            )
            for t in tickets
        ]
    ticket_types = {
        t.pk: t for t in TicketType.objects.filter(offering=offering).prefetch_related("zones", "price_tiers")
    }
    zones = {z.pk: z for z in offering.zones.all()}
    seat_ids = [t.seat_id for t in tickets if t.seat_id]
    if len(seat_ids) != len(set(seat_ids)):
        raise InvalidBooking("The same seat was chosen twice.")
    seats = {s.pk: s for s in Seat.objects.filter(pk__in=seat_ids)} if seat_ids else {}
    lines = []
    for ticket in tickets:
        attendee = (ticket.attendee_name or customer.name).strip()[:150]
        tt = ticket_types.get(ticket.ticket_type_id)
        if tt is None:
            raise InvalidBooking(f"Choose a ticket type of {offering.name}.")
        admitted = [z.pk for z in tt.zones.all()] or list(zones)
        zone_id = ticket.zone_id
        if zone_id is None and len(admitted) == 1:
            zone_id = admitted[0]
        if zones and zone_id is None:
            raise InvalidBooking(f"Choose where you want to be for your {tt.name} ticket.")
        if zone_id is not None and zone_id not in admitted:
            raise InvalidBooking(f"A {tt.name} ticket is not valid in that area.")
        seat_id = ticket.seat_id
        if seat_id is not None:
            seat = seats.get(seat_id)
            if seat is None or seat.zone_id != zone_id:
                raise InvalidBooking("That seat does not exist in the area you chose.")
        price, price_name = price_in_force(
            ticket_price=tt.price,
            tiers=[(p.name, p.price, p.valid_from, p.valid_until) for p in tt.price_tiers.all()],
            now=now,
        )
        lines.append(
            _Line(Place(zone_id, tt.pk, seat_id), price, price_name, attendee, ticket.attendee_email, tt.pk)
        )
    return lines


def booking_hold_session(
    *,
    offering: Offering,
    session: Session,
    tickets: list[TicketRequest],
    customer: CustomerDetails,
    idempotency_key: str,
    now: datetime,
    notes: str = "",
    acting_user=None,
    actor: str = "customer",
    known_counters: list[CapacityCounter] | None = None,
) -> Booking:
    """Hold places in a class or event session for the offering's hold time (free ones confirm at once).

    *known_counters*: the session's counters as the caller just read them without a lock
    (`booking.selectors.session_places_for_new_booking`), so they are not read again; nothing is
    decided on them that the locked write does not check again.

    :raises InvalidBooking: for a request that cannot be right (nothing is held).
    :raises SoldOut | SeatTaken: when the places are not there any more.
    :raises CapacityBusy: when the places are locked too long by others (try again).
    """
    customer = customer.validated()
    lines = _session_lines(offering=offering, session=session, tickets=tickets, customer=customer, now=now)
    _require_key(idempotency_key)
    # A read without locks turns most "sold out" answers away before any work (flash sales), unless
    # holds that ran out are still counted: those are released under the lock below.
    known = known_counters
    if known is None:
        known = list(CapacityCounter.objects.filter(session=session))
    try:
        session_places_check(counters=known, places=[line.place for line in lines])
    except SoldOut:
        existing = _existing_for_key(idempotency_key, customer, offering)
        if existing is not None:
            return existing  # a retry of a booking that took the last places
        expired = Booking.objects.filter(
            session=session, status__in=HOLDING_STATUSES, hold_expires_at__lte=now
        )
        if not expired.exists():
            raise

    def work() -> Booking:
        return _hold_session_in_transaction(
            offering=offering,
            session=session,
            lines=lines,
            customer=_customer_for(customer, now),
            idempotency_key=idempotency_key,
            now=now,
            notes=notes,
            acting_user=acting_user,
            actor=actor,
            known=known,
        )

    return _in_one_transaction(idempotency_key, customer, offering, work)


def _hold_session_in_transaction(
    *,
    offering,
    session,
    lines,
    customer,
    idempotency_key,
    now,
    notes="",
    acting_user=None,
    actor="customer",
    hold_until: datetime | None = None,
    counters: list[CapacityCounter] | None = None,
    known: list[CapacityCounter] | None = None,
) -> Booking:
    """Write the booking and take its places. *counters*: the session's, locked by the caller already;
    *known*: the session's, read without a lock, which lets places without seats be taken in one
    statement."""
    require_atomic("_hold_session_in_transaction")
    total = sum((line.price for line in lines), Decimal("0"))
    free = total == 0 and hold_until is None
    booking = _booking_create(
        customer=customer,
        offering=offering,
        session=session,
        starts_at=session.starts_at,
        ends_at=session.ends_at,
        free=free,
        hold_until=hold_until,
        idempotency_key=idempotency_key,
        total=total,
        notes=notes,
        now=now,
    )
    items = BookingItem.objects.bulk_create(
        BookingItem(
            booking=booking,
            ticket_type_id=line.ticket_type_id,
            zone_id=line.place.zone_id,
            seat_id=line.place.seat_id,
            price=line.price,
            price_name=line.price_name,
            attendee_name=line.attendee_name,
            attendee_email=line.attendee_email,
        )
        for line in lines
    )
    to_seat = _unseated(offering, items) if offering.kind == Offering.Kind.EVENT else []

    def opened() -> None:
        seats = [i.seat_id for i in items if i.seat_id]
        summary = {"session_id": session.pk, "places": len(items), "seats": seats}
        _booking_opened(booking, free=free, now=now, acting_user=acting_user, actor=actor, **summary)

    # Everything else is written before the counters are locked, so the lock is held only for the
    # check and the update: every booking of the session queues on it. Places without seats are
    # taken in one guarded statement, the last before COMMIT. A "best available" seat is chosen under
    # the lock, and only then can the timeline entry name it.
    if not to_seat:
        opened()
    if counters is None and known is not None and not any(item.seat_id for item in items) and not to_seat:
        places = [line.place for line in lines]
        demand = session_places_demand(counters=known, places=places)
        counters = session_counters_take(session_id=session.pk, known=known, demand=demand, sold=free)
        if counters is None:
            return booking
        # not taken: short of room, or the counters changed; decided below on the locked rows
    elif counters is None:
        counters = lock_session_counters(session_ids=[session.pk]).get(session.pk, [])
    try:
        session_places_check(counters=counters, places=[line.place for line in lines])
    except SoldOut:  # short of room: holds that ran out may be counted still, give them back first
        counters = _release_expired_on_session(session, counters, now)
    if to_seat:
        _assign_seats(session, items, to_seat)
    session_places_take(session=session, counters=counters, places=_item_places(items), sold=free, now=now)
    if to_seat:
        opened()
    return booking


def _booking_create(
    *,
    customer: Customer,
    offering: Offering,
    starts_at: datetime,
    ends_at: datetime,
    free: bool,
    idempotency_key: str,
    total: Decimal,
    notes: str,
    now: datetime,
    session: Session | None = None,
    hold_until: datetime | None = None,
) -> Booking:
    """The booking row: confirmed at once when free, else held until `hold_until` or the offering's
    hold time from now."""
    return Booking.objects.create(
        customer=customer,
        offering=offering,
        session=session,
        starts_at=starts_at,
        ends_at=ends_at,
        status=BookingStatus.CONFIRMED if free else BookingStatus.HELD,
        hold_expires_at=None if free else (hold_until or now + timedelta(minutes=offering.hold_minutes)),
        idempotency_key=idempotency_key,
        total_amount=total,
        currency=offering.currency,
        notes=notes[:2000],
        created_at=now,
        updated_at=now,
        confirmed_at=now if free else None,
    )


def _unseated(offering: Offering, items: list[BookingItem]) -> list[BookingItem]:
    """The places in seated zones that came without a seat."""
    seated = set(offering.zones.filter(is_seated=True).values_list("pk", flat=True))
    return [item for item in items if item.zone_id in seated and not item.seat_id]


def _seat_where_needed(session: Session, items: list[BookingItem]) -> list[tuple[Place, str]]:
    """Every item's place, after giving "best available" seats to those in seated zones without one."""
    unseated = _unseated(session.offering, items)
    if unseated:
        _assign_seats(session, items, unseated)
    return _item_places(items)


def _item_places(items: list[BookingItem]) -> list[tuple[Place, str]]:
    return [(Place(i.zone_id, i.ticket_type_id, i.seat_id), i.holder) for i in items]


def _assign_seats(session: Session, items: list[BookingItem], unseated: list[BookingItem]) -> None:
    """Give "best available" seats to the *unseated* of a booking's *items* (never a seat another of
    its items picked itself)."""
    chosen = {i.seat_id for i in items if i.seat_id}
    missing: dict[int, list[BookingItem]] = {}
    for item in unseated:
        missing.setdefault(item.zone_id, []).append(item)
    for zone_id, zone_items in missing.items():
        free = seats_best_available(session=session, zone_id=zone_id, count=len(zone_items), exclude=chosen)
        if len(free) < len(zone_items):
            raise SoldOut("There are not enough seats left together in that area.")
        for item, seat_id in zip(zone_items, free, strict=False):
            item.seat_id = seat_id
        BookingItem.objects.bulk_update(zone_items, ["seat"])


# --- holding an appointment ---------------------------------------------------------------------


def _check_appointment(
    *, offering: Offering, starts_at: datetime, preferred: dict[int, int] | None, now: datetime
) -> None:
    if not offering.is_published or offering.kind != Offering.Kind.APPOINTMENT:
        raise InvalidBooking(f"{offering.name} is not an appointment that can be booked.")
    _check_window(
        offering=offering,
        starts_at=starts_at,
        sales_open_at=offering.sales_open_at,
        sales_close_at=offering.sales_close_at,
        now=now,
    )
    local = starts_at.astimezone(offering.location.tz)
    minutes = local.hour * 60 + local.minute
    step = int(offering.slot_interval.total_seconds() // 60)
    if local.second or local.microsecond or minutes % step:
        raise InvalidBooking("That is not one of the start times we offer. Please pick one from the list.")
    if preferred:
        requirements = {r.pk: r for r in offering.requirements.prefetch_related("candidates")}
        for requirement_id, resource_id in preferred.items():
            requirement = requirements.get(requirement_id)
            if requirement is None or resource_id not in {c.pk for c in requirement.candidates.all()}:
                raise InvalidBooking("That choice is not available for this appointment.")
            if not requirement.customer_chooses:
                raise InvalidBooking(
                    f"The {requirement.label.lower()} is assigned for you; it cannot be chosen."
                )


def booking_hold_appointment(
    *,
    offering: Offering,
    starts_at: datetime,
    customer: CustomerDetails,
    idempotency_key: str,
    now: datetime,
    preferred: dict[int, int] | None = None,
    notes: str = "",
    acting_user=None,
    actor: str = "customer",
) -> Booking:
    """Hold an appointment slot, allocating the chosen (or any free) resources under lock.

    :raises InvalidBooking: for a request that cannot be right (nothing is held).
    :raises SlotTaken: when the time or the chosen person was just taken.
    :raises CapacityBusy: when the resources are locked too long by others (try again).
    """
    customer = customer.validated()
    _check_appointment(offering=offering, starts_at=starts_at, preferred=preferred, now=now)
    _require_key(idempotency_key)
    existing = _existing_for_key(idempotency_key, customer, offering)
    if existing is not None:
        return existing

    def work() -> Booking:
        person = _customer_for(customer, now)
        free = offering.price == 0
        ends_at = starts_at + offering.duration
        booking = _booking_create(
            customer=person,
            offering=offering,
            starts_at=starts_at,
            ends_at=ends_at,
            free=free,
            idempotency_key=idempotency_key,
            total=offering.price,
            notes=notes,
            now=now,
        )
        item = BookingItem.objects.create(
            booking=booking, price=offering.price, attendee_name=person.name, attendee_email=person.email
        )
        resource_ids = appointment_candidate_resource_ids(offering=offering)
        lock_resource_units(resource_ids=resource_ids)
        span = (starts_at - offering.buffer_before, ends_at + offering.buffer_after)
        _release_expired_on_resources(resource_ids, span, now)
        taken = appointment_time_take(
            offering=offering, starts_at=starts_at, holder=item.holder, preferred=preferred, now=now
        )
        assigned = {str(req): [r.pk for r in rs] for req, rs in taken.resources.items()}
        summary = {"resources": assigned, "starts_at": starts_at}
        _booking_opened(booking, free=free, now=now, acting_user=acting_user, actor=actor, **summary)
        return booking

    return _in_one_transaction(idempotency_key, customer, offering, work)
