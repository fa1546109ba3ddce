"""Writes of bookings: hold, confirm, expire, cancel, reschedule, and the waitlist.

Every use case has the same shape (after pretix's order services): validate the request with
messages a customer can act on → open one transaction → lock the booking row (if it
exists), then the capacity rows (`inventory.locks`, in key order, once) → check and write → record the
timeline entry and the outbox messages in the same transaction → commit once. Nothing is sent for a
change that rolled back, and every change is on the booking's timeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction

from booking import timeline
from booking.locks import lock_booking, lock_bookings_if_free
from booking.models import (
    HOLDING_STATUSES,
    SOLD_STATUSES,
    Booking,
    BookingCharge,
    BookingItem,
    BookingStatus,
    Customer,
    WaitlistEntry,
)
from booking.selectors import (
    booking_customer_cancel_refusal,
    booking_customer_reschedule_refusal,
    notice_text,
)
from booking.states import check_transition
from core.broker import task_publish
from core.errors import ApplicationError
from core.hooks import hook_results
from core.outbox.services import outbox_enqueue
from core.transactions import require_atomic, service_transaction
from inventory.availability import sales_window_reason
from inventory.capacity import (
    Place,
    appointment_candidate_resource_ids,
    appointment_holders_overlapping,
    appointment_time_release,
    appointment_time_take,
    seats_best_available,
    session_places_check,
    session_places_confirm,
    session_places_release,
    session_places_take,
)
from inventory.errors import SeatTaken, SlotTaken, SoldOut
from inventory.locks import CapacityBusy, lock_resource_units, lock_session_counters
from inventory.models import Allocation, CapacityCounter, Offering, Seat, SeatAllocation, Session, TicketType
from inventory.selectors import price_in_force

logger = logging.getLogger(__name__)

ITEM_HOLDER_PREFIX = "booking_item:"


class BookingError(ApplicationError):
    default_code = "booking_error"


class InvalidBooking(BookingError):
    """The request itself is wrong (past time, wrong session, too many places …)."""

    default_code = "invalid"


class NotAllowed(BookingError):
    """The offering's policy does not allow this (e.g. cancelling too late online)."""

    default_code = "not_allowed"


class IdempotencyConflict(BookingError):
    default_code = "idempotency_conflict"


class CapacityGone(BookingError):
    """A late confirmation found its places taken by someone else meanwhile."""

    default_code = "capacity_gone"


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


# --- shared helpers -----------------------------------------------------------------------------


def _customer_for(details: CustomerDetails, now: datetime) -> Customer:
    """The customer with this email (any case), created or updated with the details given, in one statement.

    One statement rather than look-up-then-insert: two tabs booking for the same person at once both
    land on the same row, and a flash sale does not pay for three round trips per booking.
    """
    sql = """
        INSERT INTO booking_customer (name, email, phone, time_zone, created_at)
        VALUES (%(name)s, %(email)s, %(phone)s, %(time_zone)s, %(now)s)
        ON CONFLICT (lower(email)) DO UPDATE SET
            name = EXCLUDED.name,
            phone = COALESCE(NULLIF(EXCLUDED.phone, ''), booking_customer.phone),
            time_zone = COALESCE(NULLIF(EXCLUDED.time_zone, ''), booking_customer.time_zone)
        RETURNING id, name, email, phone, time_zone, user_id, created_at
    """
    params = {
        "name": details.name,
        "email": details.email,
        "phone": details.phone,
        "time_zone": details.time_zone,
        "now": now,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return Customer(
        id=row[0],
        name=row[1],
        email=row[2],
        phone=row[3],
        time_zone=row[4],
        user_id=row[5],
        created_at=row[6],
    )


def _require_key(key: str) -> None:
    if not key:
        raise InvalidBooking("This booking form has expired. Please reload the page.")


def _existing_for_key(key: str, details: CustomerDetails, offering: Offering) -> Booking | None:
    booking = Booking.objects.filter(idempotency_key=key).select_related("customer").first()
    if booking is None:
        return None
    if booking.offering_id != offering.pk or booking.customer.email.lower() != details.email.lower():
        raise IdempotencyConflict("This booking form was already used. Please reload the page and try again.")
    return booking


def _in_one_transaction(key: str, details: CustomerDetails, offering: Offering, work):
    """Run *work* in one transaction; a retry with the same key gets the first booking back.

    The key's unique index decides, not a look-up first: the common case (a new key) costs nothing
    extra, and two concurrent retries cannot both pass a look-up.
    """
    try:
        with service_transaction():
            return work()
    except IntegrityError:
        existing = _existing_for_key(key, details, offering)
        if existing is not None:
            return existing
        raise


def _places_of(booking: Booking) -> tuple[list[Place], list[str]]:
    """The places this booking holds in the capacity counters, with their holders.

    A place resold to someone else is theirs now; a place being bought on resale is still the
    seller's until the purchase is confirmed.
    """
    items = [
        i
        for i in booking.items.all()
        if not i.resold and (i.resale_of_id is None or booking.status in SOLD_STATUSES)
    ]
    return (
        [Place(zone_id=i.zone_id, ticket_type_id=i.ticket_type_id, seat_id=i.seat_id) for i in items],
        [i.holder for i in items],
    )


def _announce(topic: str, booking: Booking, now: datetime, **extra) -> None:
    outbox_enqueue(
        topic=topic,
        payload={
            "booking_id": booking.pk,
            "reference": booking.reference,
            "sequence": booking.sequence,
            **extra,
        },
        now=now,
    )


def _schedule_expiry(booking: Booking) -> None:
    eta = booking.hold_expires_at
    booking_id = booking.pk

    # If the broker is away, the periodic sweep releases the hold instead.
    transaction.on_commit(
        lambda: task_publish("booking.tasks.booking_expire_hold", kwargs={"booking_id": booking_id}, eta=eta)
    )


def _local(moment: datetime, offering: Offering) -> str:
    return f"{moment.astimezone(offering.location.tz):%a %d %b %H:%M %Z}"


def _check_window(
    *, offering: Offering, starts_at: datetime, sales_open_at, sales_close_at, now: datetime
) -> None:
    if starts_at <= now:
        raise InvalidBooking("That time has already passed. Please choose a later one.")
    reason = sales_window_reason(now=now, sales_open_at=sales_open_at, sales_close_at=sales_close_at)
    if reason == "not_on_sale_yet":
        raise InvalidBooking(f"Booking opens {_local(sales_open_at, offering)}.")
    if reason == "sales_closed":
        raise InvalidBooking("Booking for this has closed.")
    if starts_at < now + offering.min_notice:
        raise InvalidBooking(f"Online booking closes {notice_text(offering.min_notice)} before the start.")
    if starts_at > now + offering.horizon:
        raise InvalidBooking(f"This can be booked at most {offering.horizon.days} days ahead.")


# --- lazy release of expired holds --------------------------------------------------------------


def _expire_locked(
    booking: Booking, *, now: datetime, lazily: bool, counters: list[CapacityCounter] | None = None
) -> None:
    """Expire a locked, holding booking and give its places back (capacity rows already locked)."""
    check_transition(booking.status, BookingStatus.EXPIRED)
    places, holders = _places_of(booking)
    if booking.session_id:
        session_places_release(counters=counters, places=places, holders=holders, was_sold=False)
    else:
        appointment_time_release(holders=holders)
    booking.status = BookingStatus.EXPIRED
    booking.updated_at = now
    booking.save(update_fields=["status", "updated_at"])
    entry = WaitlistEntry.objects.filter(offer=booking, status=WaitlistEntry.Status.OFFERED).first()
    if entry is not None:
        entry.status = WaitlistEntry.Status.LAPSED
        entry.updated_at = now
        entry.save(update_fields=["status", "updated_at"])
    timeline.hold_expired(booking, now=now, lazily=lazily)
    _announce("booking.expired", booking, now)
    if booking.session_id:
        outbox_enqueue(topic="session.places_freed", payload={"session_id": booking.session_id}, now=now)


def _release_expired_on_session(
    session: Session, counters: list[CapacityCounter], now: datetime
) -> list[CapacityCounter]:
    """Expire holds on this session that ran out, under the counter locks we already hold."""
    expired_ids = list(
        Booking.objects.filter(
            session=session, status__in=HOLDING_STATUSES, hold_expires_at__lte=now
        ).values_list("pk", flat=True)
    )
    if not expired_ids:
        return counters
    for booking in lock_bookings_if_free(booking_ids=expired_ids):
        if booking.is_holding and booking.hold_expires_at <= now:
            _expire_locked(booking, now=now, lazily=True, counters=counters)
    # Re-read the locked rows: the releases changed them behind the objects we hold.
    return list(CapacityCounter.objects.filter(pk__in=[c.pk for c in counters]).order_by("pk"))


def _release_expired_on_resources(
    resource_ids: list[int], span: tuple[datetime, datetime], now: datetime
) -> None:
    holders = appointment_holders_overlapping(resource_ids=resource_ids, starts_at=span[0], ends_at=span[1])
    item_ids = [int(h.removeprefix(ITEM_HOLDER_PREFIX)) for h in holders if h.startswith(ITEM_HOLDER_PREFIX)]
    if not item_ids:
        return
    expired_ids = list(
        Booking.objects.filter(
            items__pk__in=item_ids, status__in=HOLDING_STATUSES, hold_expires_at__lte=now
        ).values_list("pk", flat=True)
    )
    for booking in lock_bookings_if_free(booking_ids=expired_ids):
        if booking.is_holding and booking.hold_expires_at <= now:
            _expire_locked(booking, now=now, lazily=True)


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
    _check_window(
        offering=offering,
        starts_at=session.starts_at,
        sales_open_at=session.sales_open_at or offering.sales_open_at,
        sales_close_at=session.sales_close_at or offering.sales_close_at,
        now=now,
    )
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
) -> Booking:
    """Hold places in a class or event session for the offering's hold time (free ones confirm at once).

    :raises InvalidBooking: for a request that cannot be right (nothing is held).
    :raises SoldOut | SeatTaken: when the places are not there any more.
    :raises CapacityBusy: when the places are locked too long by others (try again).
    """
    customer = customer.validated()
    lines = _session_lines(offering=offering, session=session, tickets=tickets, customer=customer, now=now)
    _require_key(idempotency_key)
    # A read without locks turns most "sold out" answers away before any work (flash sales), unless
    # holds that ran out are still counted: those are released under the lock below.
    try:
        session_places_check(
            counters=list(CapacityCounter.objects.filter(session=session)),
            places=[line.place for line in lines],
        )
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
) -> Booking:
    require_atomic("_hold_session_in_transaction")
    total = sum((line.price for line in lines), Decimal("0"))
    free = total == 0 and hold_until is None
    booking = Booking.objects.create(
        customer=customer,
        offering=offering,
        session=session,
        starts_at=session.starts_at,
        ends_at=session.ends_at,
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
    if counters is None:
        counters = lock_session_counters(session_ids=[session.pk]).get(session.pk, [])
    try:
        session_places_check(counters=counters, places=[line.place for line in lines])
    except SoldOut:  # short of room: holds that ran out may be counted still, give them back first
        counters = _release_expired_on_session(session, counters, now)
    places = (
        _assign_seats(session, items, now)
        if offering.kind == Offering.Kind.EVENT
        else [(Place(), item.holder) for item in items]
    )
    session_places_take(session=session, counters=counters, places=places, sold=free, now=now)

    summary = {
        "session_id": session.pk,
        "places": len(items),
        "seats": [i.seat_id for i in items if i.seat_id],
    }
    if free:
        timeline.created_and_confirmed(booking, now=now, acting_user=acting_user, actor=actor, **summary)
        _announce("booking.confirmed", booking, now)
    else:
        timeline.hold_created(booking, now=now, acting_user=acting_user, actor=actor, **summary)
        _announce("booking.held", booking, now)
        _schedule_expiry(booking)
    return booking


def _assign_seats(session: Session, items: list[BookingItem], now: datetime) -> list[tuple[Place, str]]:
    """Give "best available" seats to places in seated zones that came without one."""
    seated = {z.pk for z in session.offering.zones.filter(is_seated=True)}
    chosen = {i.seat_id for i in items if i.seat_id}
    missing: dict[int, list[BookingItem]] = {}
    for item in items:
        if item.zone_id in seated and not item.seat_id:
            missing.setdefault(item.zone_id, []).append(item)
    for zone_id, zone_items in missing.items():
        free = seats_best_available(session=session, zone_id=zone_id, count=len(zone_items), exclude=chosen)
        if len(free) < len(zone_items):
            raise SoldOut("There are not enough seats left together in that area.")
        for item, seat_id in zip(zone_items, free, strict=False):
            item.seat_id = seat_id
        BookingItem.objects.bulk_update(zone_items, ["seat"])
    return [(Place(i.zone_id, i.ticket_type_id, i.seat_id), i.holder) for i in items]


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
        booking = Booking.objects.create(
            customer=person,
            offering=offering,
            starts_at=starts_at,
            ends_at=ends_at,
            status=BookingStatus.CONFIRMED if free else BookingStatus.HELD,
            hold_expires_at=None if free else now + timedelta(minutes=offering.hold_minutes),
            idempotency_key=idempotency_key,
            total_amount=offering.price,
            currency=offering.currency,
            notes=notes[:2000],
            created_at=now,
            updated_at=now,
            confirmed_at=now if free else None,
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
        if free:
            timeline.created_and_confirmed(booking, now=now, acting_user=acting_user, actor=actor, **summary)
            _announce("booking.confirmed", booking, now)
        else:
            timeline.hold_created(booking, now=now, acting_user=acting_user, actor=actor, **summary)
            _announce("booking.held", booking, now)
            _schedule_expiry(booking)
        return booking

    return _in_one_transaction(idempotency_key, customer, offering, work)


# --- confirmation and expiry --------------------------------------------------------------------


def booking_confirm(
    *, booking: Booking, now: datetime, acting_user=None, actor: str = "system", data: dict | None = None
) -> Booking:
    """Confirm a booking: its held places become sold, in one locked transaction. Idempotent.

    A booking whose hold already expired and was released is booked again if its places are still
    free (a payment that landed late); otherwise `CapacityGone` is raised and nothing changes.
    """
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        if booking.status == BookingStatus.CONFIRMED:
            return booking
        _confirm_locked(booking, now=now, acting_user=acting_user, actor=actor, data=data or {})
    return booking


def _confirm_locked(booking: Booking, *, now, acting_user, actor, data) -> None:
    require_atomic("_confirm_locked")
    check_transition(booking.status, BookingStatus.CONFIRMED)
    places, holders = _places_of(booking)
    late = booking.status == BookingStatus.EXPIRED
    resales = [item for item in booking.items.all() if item.resale_of_id]
    if resales:
        _take_over_resold_places(booking, resales, now)
    elif booking.session_id:
        counters = lock_session_counters(session_ids=[booking.session_id])[booking.session_id]
        if late:
            counters = _release_expired_on_session(booking.session, counters, now)
            try:
                session_places_take(
                    session=booking.session,
                    counters=counters,
                    places=list(zip(places, holders, strict=True)),
                    sold=True,
                    now=now,
                )
            except (SoldOut, SeatTaken) as error:
                raise CapacityGone(f"The places were taken after the hold ran out: {error.message}") from None
        else:
            session_places_confirm(counters=counters, places=places)
    elif late:
        _retake_appointment(booking, holders, now)
    booking.status = BookingStatus.CONFIRMED
    booking.confirmed_at = now
    booking.hold_expires_at = None
    booking.updated_at = now
    booking.save(update_fields=["status", "confirmed_at", "hold_expires_at", "updated_at"])
    WaitlistEntry.objects.filter(offer=booking).update(status=WaitlistEntry.Status.BOOKED, updated_at=now)
    timeline.confirmed(booking, now=now, acting_user=acting_user, actor=actor, late=late, **data)
    _announce("booking.confirmed", booking, now)


def _take_over_resold_places(booking: Booking, items: list[BookingItem], now: datetime) -> None:
    """A resale purchase is paid: the buyer's places replace the seller's, counters unchanged.

    :raises CapacityGone: the seller cancelled (or the ticket was resold) meanwhile.
    """
    sources = {i.resale_of_id: i for i in items}
    seller_items = list(BookingItem.objects.select_related("booking").filter(pk__in=sources))
    if len(seller_items) != len(sources):
        raise CapacityGone("The ticket offered for resale is no longer available.")
    for source in seller_items:
        # The seller's booking is older (a lower key) than the buyer's, locked already: waiting for
        # it here would invert the key order, so a busy seller means "try again shortly".
        seller = lock_bookings_if_free(booking_ids=[source.booking_id])
        if not seller:
            raise CapacityBusy("The seller's booking is being changed right now; try again in a moment.")
        source.refresh_from_db(fields=["resold"])
        if seller[0].status not in SOLD_STATUSES or source.resold:
            raise CapacityGone("The ticket offered for resale is no longer available.")
        source.resold = True
        source.save(update_fields=["resold"])
        SeatAllocation.objects.filter(holder=source.holder, is_active=True).update(
            holder=sources[source.pk].holder
        )
        timeline.resold(
            seller[0],
            now=now,
            item_id=source.pk,
            buyer_booking=booking.reference,
            price=sources[source.pk].price,
        )
        _announce(
            "booking.resale.completed",
            seller[0],
            now,
            item_id=source.pk,
            buyer_booking_id=booking.pk,
            amount=str(sources[source.pk].price),
        )


def booking_hold_resale(
    *,
    source_item: BookingItem,
    price: Decimal,
    customer: CustomerDetails,
    idempotency_key: str,
    now: datetime,
) -> Booking:
    """Hold a place offered for resale for a buyer: no capacity moves until the buyer has paid.

    :raises InvalidBooking: the place cannot be bought (its booking is not confirmed, or it is gone).
    """
    customer = customer.validated()
    _require_key(idempotency_key)
    seller = source_item.booking
    if seller.status not in SOLD_STATUSES or source_item.resold or not seller.session_id:
        raise InvalidBooking("This ticket is no longer for sale.")
    if seller.starts_at <= now:
        raise InvalidBooking("This has already started.")
    offering = seller.offering

    def work() -> Booking:
        person = _customer_for(customer, now)
        booking = Booking.objects.create(
            customer=person,
            offering=offering,
            session=seller.session,
            starts_at=seller.starts_at,
            ends_at=seller.ends_at,
            status=BookingStatus.HELD,
            hold_expires_at=now + timedelta(minutes=offering.hold_minutes),
            idempotency_key=idempotency_key,
            total_amount=price,
            currency=offering.currency,
            created_at=now,
            updated_at=now,
        )
        BookingItem.objects.create(
            booking=booking,
            ticket_type_id=source_item.ticket_type_id,
            zone_id=source_item.zone_id,
            seat_id=source_item.seat_id,
            price=price,
            price_name="Resale",
            attendee_name=person.name,
            attendee_email=person.email,
            resale_of=source_item,
        )
        timeline.hold_created(booking, now=now, actor="customer", resale_of=seller.reference)
        _announce("booking.held", booking, now)
        _schedule_expiry(booking)
        return booking

    return _in_one_transaction(idempotency_key, customer, offering, work)


def _retake_appointment(booking: Booking, holders: list[str], now: datetime) -> None:
    offering = booking.offering
    previous = list(
        Allocation.objects.filter(holder__in=holders).values_list("resource_id", flat=True).distinct()
    )
    resource_ids = appointment_candidate_resource_ids(offering=offering)
    lock_resource_units(resource_ids=resource_ids)
    span = (booking.starts_at - offering.buffer_before, booking.ends_at + offering.buffer_after)
    _release_expired_on_resources(resource_ids, span, now)
    Allocation.objects.filter(holder__in=holders).delete()  # the released rows, replaced below
    requirements = {r.pk: set(r.candidates.values_list("pk", flat=True)) for r in offering.requirements.all()}
    preferred = {rid: res for rid, cands in requirements.items() for res in previous if res in cands}
    try:
        appointment_time_take(
            offering=offering,
            starts_at=booking.starts_at,
            holder=holders[0],
            preferred=preferred or None,
            now=now,
        )
    except SlotTaken as error:
        raise CapacityGone(f"The time was taken after the hold ran out: {error.message}") from None


def booking_expire(*, booking_id: int, now: datetime) -> bool:
    """Release an expired hold (the task at expiry and the sweeper call this). True if it expired it."""
    with service_transaction():
        locked = lock_bookings_if_free(booking_ids=[booking_id])
        if not locked:
            return False  # someone is confirming or expiring it right now
        booking = locked[0]
        if not booking.is_holding or booking.hold_expires_at > now:
            return False
        counters = None
        if booking.session_id:
            counters = lock_session_counters(session_ids=[booking.session_id])[booking.session_id]
        _expire_locked(booking, now=now, lazily=False, counters=counters)
        return True


def hold_release_expired(*, now: datetime, limit: int = 500) -> int:
    """Release every hold that ran out (the periodic safety net behind the per-hold task)."""
    ids = list(
        Booking.objects.filter(status__in=HOLDING_STATUSES, hold_expires_at__lte=now)
        .order_by("hold_expires_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(booking_expire(booking_id=booking_id, now=now) for booking_id in ids)


def booking_await_payment(*, booking: Booking, now: datetime, actor: str = "customer", **data) -> Booking:
    """The customer is paying: the hold now waits for the payment (it still expires on time)."""
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        if booking.status == BookingStatus.AWAITING_PAYMENT:
            return booking
        check_transition(booking.status, BookingStatus.AWAITING_PAYMENT)
        booking.status = BookingStatus.AWAITING_PAYMENT
        booking.updated_at = now
        booking.save(update_fields=["status", "updated_at"])
        timeline.status_changed(booking, now=now, actor=actor, **data)
        _announce("booking.awaiting_payment", booking, now)
    return booking


# --- payments report here (the payments app moves the money; the booking keeps the story) ---------


def booking_payment_failed(*, booking: Booking, now: datetime, reason: str, actor: str = "stripe") -> Booking:
    """A payment attempt failed: the booking shows it, and the hold keeps running for another try."""
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        if booking.status == BookingStatus.PAYMENT_FAILED or not booking.is_holding:
            return booking
        check_transition(booking.status, BookingStatus.PAYMENT_FAILED)
        booking.status = BookingStatus.PAYMENT_FAILED
        booking.updated_at = now
        booking.save(update_fields=["status", "updated_at"])
        timeline.status_changed(booking, now=now, actor=actor, reason=reason)
        _announce("booking.payment_failed", booking, now, reason=reason)
    return booking


def booking_flag_attention(
    *, booking: Booking, now: datetime, reason: str, actor: str = "system", **data
) -> Booking:
    """Ask a person to look at this booking (a late payment, a calendar conflict), saying why."""
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        booking.needs_attention = True
        booking.attention_reason = f"{booking.attention_reason}\n{reason}".strip()
        booking.updated_at = now
        booking.save(update_fields=["needs_attention", "attention_reason", "updated_at"])
        timeline.attention_flagged(booking, now=now, actor=actor, reason=reason, **data)
    return booking


def booking_money_update(*, booking: Booking, paid: Decimal, refunded: Decimal, now: datetime) -> Booking:
    """Record what has been paid and refunded; a cancelled or expired booking fully refunded ends refunded."""
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        booking.amount_paid, booking.amount_refunded = paid, refunded
        booking.updated_at = now
        fields = ["amount_paid", "amount_refunded", "updated_at"]
        fully_refunded = paid > 0 and refunded >= paid
        if fully_refunded and booking.status in (BookingStatus.CANCELLED, BookingStatus.EXPIRED):
            check_transition(booking.status, BookingStatus.REFUNDED)
            booking.status = BookingStatus.REFUNDED
            fields.append("status")
            timeline.status_changed(booking, now=now, actor="stripe", refunded=refunded)
            _announce("booking.refunded", booking, now, refunded=str(refunded))
        booking.save(update_fields=fields)
    return booking


def booking_charge_add(
    *,
    booking: Booking,
    amount: Decimal,
    description: str,
    reference: str,
    now: datetime,
    actor: str = "customer",
) -> BookingCharge:
    """Ask a confirmed booking for more money (a fee), once per *reference*; paid through checkout.

    :raises InvalidBooking: the booking is not confirmed, or the amount is not above zero.
    """
    if amount <= 0:
        raise InvalidBooking("A charge must be above zero.")
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        existing = BookingCharge.objects.filter(reference=reference).first()
        if existing is not None:
            return existing
        if booking.status != BookingStatus.CONFIRMED:
            raise InvalidBooking("Only a confirmed booking can be charged.")
        charge = BookingCharge.objects.create(
            booking=booking, amount=amount, description=description, reference=reference, created_at=now
        )
        timeline.charge_added(booking, now=now, charge=charge, actor=actor)
    return charge


def booking_charge_settle(
    *, charge: BookingCharge, paid: bool, now: datetime, actor: str = "system", **data
) -> BookingCharge:
    """A due charge is paid (it joins the booking's total) or cancelled. Idempotent.

    Announces `booking.charge.paid` / `booking.charge.cancelled` so whoever asked for it can act.
    """
    with service_transaction():
        booking = lock_booking(booking_id=charge.booking_id)
        charge = BookingCharge.objects.get(pk=charge.pk)
        if charge.status != BookingCharge.Status.DUE:
            return charge
        charge.status = BookingCharge.Status.PAID if paid else BookingCharge.Status.CANCELLED
        charge.settled_at = now
        charge.save(update_fields=["status", "settled_at"])
        if paid:
            booking.total_amount += charge.amount
            booking.updated_at = now
            booking.save(update_fields=["total_amount", "updated_at"])
        timeline.charge_settled(booking, now=now, charge=charge, actor=actor, **data)
        _announce(
            f"booking.charge.{charge.status}", booking, now, charge_id=charge.pk, reference=charge.reference
        )
    return charge


# --- cancellation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundQuote:
    percent: int
    amount: Decimal
    explanation: str


def cancellation_quote(*, booking: Booking, now: datetime, paid: Decimal | None = None) -> RefundQuote:
    """What a customer gets back if they cancel now, under the offering's policy, of what they paid."""
    paid = booking.amount_paid - booking.amount_refunded if paid is None else paid
    if booking.status in HOLDING_STATUSES or paid == 0:
        return RefundQuote(0, Decimal("0.00"), "Nothing has been paid, so nothing is refunded.")
    policy = booking.offering.cancellation_policy
    if policy is None:
        return RefundQuote(0, Decimal("0.00"), "This booking is not refundable online.")
    notice = booking.starts_at - now
    for tier in policy.tiers.order_by("-min_notice"):
        if notice >= tier.min_notice:
            amount = (paid * tier.refund_percent / 100).quantize(Decimal("0.01"))
            return RefundQuote(
                tier.refund_percent,
                amount,
                f"{tier.refund_percent}% back when cancelling at least "
                f"{notice_text(tier.min_notice)} before.",
            )
    return RefundQuote(0, Decimal("0.00"), "It is too close to the start for a refund.")


def booking_cancel(
    *,
    booking: Booking,
    now: datetime,
    by_customer: bool,
    acting_user=None,
    actor: str | None = None,
    reason: str = "",
    refund: bool = True,
) -> tuple[Booking, RefundQuote]:
    """Cancel a booking, free its places, and say how much is to be refunded (payments moves the money).

    :raises NotAllowed: the policy does not let the customer cancel this online (staff may).
    :raises IllegalTransition: it is not in a state that can be cancelled.
    """
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        check_transition(booking.status, BookingStatus.CANCELLED)
        if by_customer and (refusal := booking_customer_cancel_refusal(booking=booking, now=now)):
            raise NotAllowed(refusal)
        quote = (
            cancellation_quote(booking=booking, now=now)
            if refund
            else RefundQuote(0, Decimal("0.00"), "No refund.")
        )
        was_sold = booking.status in SOLD_STATUSES
        places, holders = _places_of(booking)
        if booking.session_id:
            counters = lock_session_counters(session_ids=[booking.session_id])[booking.session_id]
            session_places_release(counters=counters, places=places, holders=holders, was_sold=was_sold)
        else:
            appointment_time_release(holders=holders)
        booking.status = BookingStatus.CANCELLED
        booking.cancelled_at = now
        booking.hold_expires_at = None
        booking.sequence += 1
        booking.updated_at = now
        booking.save(update_fields=["status", "cancelled_at", "hold_expires_at", "sequence", "updated_at"])
        actor = actor or ("customer" if by_customer else None)
        timeline.cancelled(
            booking,
            now=now,
            acting_user=acting_user,
            actor=actor,
            reason=reason,
            refund_percent=quote.percent,
            refund_amount=quote.amount,
            was_paid=was_sold,
        )
        _announce(
            "booking.cancelled",
            booking,
            now,
            refund_amount=str(quote.amount),
            refund_percent=quote.percent,
            by_customer=by_customer,
        )
        if booking.session_id:
            outbox_enqueue(topic="session.places_freed", payload={"session_id": booking.session_id}, now=now)
    return booking, quote


# --- rescheduling -------------------------------------------------------------------------------


def booking_reschedule(
    *,
    booking: Booking,
    now: datetime,
    by_customer: bool,
    new_starts_at: datetime | None = None,
    new_session: Session | None = None,
    acting_user=None,
    actor: str | None = None,
) -> Booking:
    """Move a booking to another slot or session in one transaction: the new places are taken and the
    old ones released together, or nothing changes.

    :raises NotAllowed: the policy does not let the customer move it now (staff may).
    :raises InvalidBooking | SoldOut | SlotTaken | SeatTaken: the new time cannot be had.
    """
    offering = booking.offering
    if by_customer and (refusal := booking_customer_reschedule_refusal(booking=booking, now=now)):
        raise NotAllowed(refusal)
    if offering.kind == Offering.Kind.APPOINTMENT:
        if new_starts_at is None:
            raise InvalidBooking("Choose the new time.")
        _check_appointment(offering=offering, starts_at=new_starts_at, preferred=None, now=now)
    else:
        if new_session is None:
            raise InvalidBooking("Choose the new session.")
        if new_session.pk == booking.session_id:
            raise InvalidBooking("That is the session you are already booked on.")
        _check_window(
            offering=offering,
            starts_at=new_session.starts_at,
            sales_open_at=new_session.sales_open_at or offering.sales_open_at,
            sales_close_at=new_session.sales_close_at or offering.sales_close_at,
            now=now,
        )
        if new_session.offering_id != offering.pk or new_session.status != Session.Status.SCHEDULED:
            raise InvalidBooking(f"That is not a session of {offering.name} you can move to.")

    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        if booking.status != BookingStatus.CONFIRMED and not booking.is_holding:
            raise InvalidBooking("Only a confirmed or held booking can be moved.")
        old = {"starts_at": booking.starts_at.isoformat(), "session_id": booking.session_id}
        places, holders = _places_of(booking)
        was_sold = booking.status in SOLD_STATUSES
        if booking.session_id:
            sessions = [booking.session_id, new_session.pk]
            locked = lock_session_counters(session_ids=sessions)
            session_places_release(
                counters=locked[booking.session_id], places=places, holders=holders, was_sold=was_sold
            )
            new_counters = _release_expired_on_session(new_session, locked[new_session.pk], now)
            items = list(booking.items.all())
            for item in items:
                item.seat_id = None  # seats are per session: new ones are found below
            BookingItem.objects.bulk_update(items, ["seat"])
            new_places = _assign_seats(new_session, items, now)
            session_places_take(
                session=new_session, counters=new_counters, places=new_places, sold=was_sold, now=now
            )
            booking.session = new_session
            booking.starts_at, booking.ends_at = new_session.starts_at, new_session.ends_at
        else:
            resource_ids = appointment_candidate_resource_ids(offering=offering)
            lock_resource_units(resource_ids=resource_ids)
            Allocation.objects.filter(holder__in=holders, is_active=True).delete()  # the old time, freed
            span = (
                new_starts_at - offering.buffer_before,
                new_starts_at + offering.duration + offering.buffer_after,
            )
            _release_expired_on_resources(resource_ids, span, now)
            appointment_time_take(
                offering=offering, starts_at=new_starts_at, holder=holders[0], preferred=None, now=now
            )
            booking.starts_at, booking.ends_at = new_starts_at, new_starts_at + offering.duration
        booking.sequence += 1
        booking.updated_at = now
        booking.save(update_fields=["session", "starts_at", "ends_at", "sequence", "updated_at"])
        actor = actor or ("customer" if by_customer else None)
        timeline.rescheduled(
            booking,
            now=now,
            acting_user=acting_user,
            actor=actor,
            previous=old,
            starts_at=booking.starts_at,
            session_id=booking.session_id,
        )
        _announce("booking.rescheduled", booking, now, previous_starts_at=old["starts_at"])
        if old["session_id"]:
            outbox_enqueue(topic="session.places_freed", payload={"session_id": old["session_id"]}, now=now)
    return booking


# --- waitlist -----------------------------------------------------------------------------------


def waitlist_join(
    *,
    offering: Offering,
    session: Session,
    customer: CustomerDetails,
    quantity: int,
    now: datetime,
    ticket_type: TicketType | None = None,
) -> WaitlistEntry:
    """Put a customer on the waitlist of a session that has fewer places left than they want.

    :raises InvalidBooking: the session has places, has no waitlist, or the request is wrong.
    """
    customer = customer.validated()
    if not offering.waitlist_enabled:
        raise InvalidBooking(f"{offering.name} has no waitlist.")
    if session.offering_id != offering.pk:
        raise InvalidBooking(f"That session is not a session of {offering.name}.")
    if session.starts_at <= now or session.status != Session.Status.SCHEDULED:
        raise InvalidBooking("This session can no longer be joined.")
    if not 1 <= quantity <= offering.max_places_per_booking:
        raise InvalidBooking(f"Ask for between 1 and {offering.max_places_per_booking} places.")
    total = CapacityCounter.objects.get(session=session, zone=None, ticket_type=None)
    if total.capacity - total.held - total.sold >= quantity:
        raise InvalidBooking("There are places left: you can book them now.")
    with service_transaction():
        person = _customer_for(customer, now)
        try:
            with transaction.atomic():
                entry = WaitlistEntry.objects.create(
                    session=session,
                    customer=person,
                    quantity=quantity,
                    ticket_type=ticket_type,
                    created_at=now,
                    updated_at=now,
                )
        except IntegrityError:
            raise InvalidBooking("You are already on the waitlist for this session.") from None
        outbox_enqueue(topic="waitlist.joined", payload={"entry_id": entry.pk}, now=now)
    return entry


def waitlist_offer_next(*, session_id: int, now: datetime) -> list[WaitlistEntry]:
    """Offer freed places to the waitlist in order: each next entry gets a hold and an offer that expires.

    Strictly first come, first served: an entry that needs more places than are free waits at the
    head of the queue rather than being overtaken.
    """
    offered = []
    with service_transaction():
        session = Session.objects.select_related("offering", "offering__location").get(pk=session_id)
        if session.status != Session.Status.SCHEDULED or session.starts_at <= now:
            return []
        waiting = list(
            WaitlistEntry.objects.filter(session=session, status=WaitlistEntry.Status.WAITING)
            .select_related("customer")
            .order_by("created_at", "id")
        )
        if not waiting:
            return []
        counters = lock_session_counters(session_ids=[session.pk]).get(session.pk, [])
        counters = _release_expired_on_session(session, counters, now)
        offering = session.offering
        deadline = min(
            now + timedelta(minutes=offering.waitlist_offer_minutes), session.starts_at - offering.min_notice
        )
        for entry in waiting:
            tickets = [
                TicketRequest(ticket_type_id=entry.ticket_type_id, attendee_name=entry.customer.name)
            ] * entry.quantity
            details = CustomerDetails(entry.customer.name, entry.customer.email)
            try:
                lines = _session_lines(
                    offering=offering, session=session, tickets=tickets, customer=details, now=now
                )
                session_places_check(counters=counters, places=[line.place for line in lines])
            except (SoldOut, InvalidBooking):
                break
            with transaction.atomic():
                booking = _hold_session_in_transaction(
                    offering=offering,
                    session=session,
                    lines=lines,
                    customer=entry.customer,
                    idempotency_key=f"waitlist:{entry.pk}",
                    now=now,
                    actor="system",
                    hold_until=deadline,
                    counters=counters,
                )
            counters = list(CapacityCounter.objects.filter(pk__in=[c.pk for c in counters]).order_by("pk"))
            entry.status = WaitlistEntry.Status.OFFERED
            entry.offer = booking
            entry.updated_at = now
            entry.save(update_fields=["status", "offer", "updated_at"])
            timeline.waitlist_offered(booking, now=now, entry_id=entry.pk)
            _announce("waitlist.offered", booking, now, entry_id=entry.pk)
            offered.append(entry)
    return offered


def waitlist_leave(*, entry: WaitlistEntry, now: datetime) -> WaitlistEntry:
    with service_transaction():
        updated = WaitlistEntry.objects.filter(pk=entry.pk, status=WaitlistEntry.Status.WAITING).update(
            status=WaitlistEntry.Status.LEFT, updated_at=now
        )
        if not updated:
            raise InvalidBooking("You are no longer waiting for this session.")
    entry.refresh_from_db()
    return entry


# --- reconciliation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """A counter or allocation that disagrees with the bookings behind it."""

    kind: str  # counter, allocation, seat
    subject: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}: expected {self.expected}, found {self.actual}"


def capacity_reconcile(
    *, now: datetime, fix: bool = False, since: timedelta = timedelta(days=7)
) -> list[Drift]:
    """Compare every counter and allocation of recent and upcoming sessions/appointments with the facts.

    Facts are the items of holding bookings (held) and of confirmed, completed and no-show bookings
    (sold). With *fix*, counters are set to the facts under their locks, one session per transaction.
    """
    drift: list[Drift] = []
    horizon = now - since
    sessions = list(Session.objects.filter(ends_at__gte=horizon).values_list("pk", flat=True))
    facts: dict[tuple, list[int]] = {}
    rows = (
        BookingItem.objects.filter(booking__session_id__in=sessions, resold=False)
        .filter(booking__status__in=[*HOLDING_STATUSES, *SOLD_STATUSES])
        .exclude(resale_of__isnull=False, booking__status__in=HOLDING_STATUSES)
        .values_list("booking__session_id", "zone_id", "ticket_type_id", "booking__status")
    )
    for session_id, zone_id, ticket_type_id, status in rows:
        held, sold = (1, 0) if status in HOLDING_STATUSES else (0, 1)
        keys = {(session_id, None, None)}
        if zone_id:
            keys.add((session_id, zone_id, None))
        if ticket_type_id:
            keys.add((session_id, None, ticket_type_id))
        for key in keys:
            counts = facts.setdefault(key, [0, 0])
            counts[0] += held
            counts[1] += sold
    wrong_sessions: set[int] = set()
    for counter in CapacityCounter.objects.filter(session_id__in=sessions):
        held, sold = facts.get((counter.session_id, counter.zone_id, counter.ticket_type_id), [0, 0])
        if (counter.held, counter.sold) != (held, sold):
            drift.append(
                Drift(
                    "counter",
                    f"#{counter.pk} of session {counter.session_id}",
                    f"held {held}, sold {sold}",
                    f"held {counter.held}, sold {counter.sold}",
                )
            )
            wrong_sessions.add(counter.session_id)

    live = set(
        BookingItem.objects.filter(
            booking__status__in=[*HOLDING_STATUSES, *SOLD_STATUSES], booking__ends_at__gte=horizon
        ).values_list("pk", flat=True)
    )
    active_holders = Allocation.objects.filter(
        is_active=True, ends_at__gte=horizon, holder__startswith=ITEM_HOLDER_PREFIX
    )
    allocated = {
        int(h.removeprefix(ITEM_HOLDER_PREFIX)) for h in active_holders.values_list("holder", flat=True)
    }
    appointment_items = set(
        BookingItem.objects.filter(pk__in=live, booking__session__isnull=True).values_list("pk", flat=True)
    )
    for item_id in sorted(allocated - live):
        drift.append(Drift("allocation", f"booking_item:{item_id}", "released", "still taking time"))
    for item_id in sorted(appointment_items - allocated):
        drift.append(Drift("allocation", f"booking_item:{item_id}", "taking time", "no allocation"))

    if fix:
        for session_id in sorted(wrong_sessions):
            with service_transaction():
                for counter in lock_session_counters(session_ids=[session_id]).get(session_id, []):
                    held, sold = facts.get(
                        (counter.session_id, counter.zone_id, counter.ticket_type_id), [0, 0]
                    )
                    CapacityCounter.objects.filter(pk=counter.pk).update(held=held, sold=sold)
                logger.warning(
                    "Capacity counters of session %s reset to the bookings behind them.", session_id
                )
    return drift


# --- notifications --------------------------------------------------------------------------------


def _emails_for(topic: str, booking: Booking, payload: dict) -> list[tuple[str, str, dict]]:
    """Which emails (kind, recipient, extra context) an event of *topic* sends."""
    from booking.notifications import staff_on

    customer = booking.customer.email
    is_appointment = booking.offering.kind == Offering.Kind.APPOINTMENT
    staff = [r.email for r in staff_on(booking) if r.email] if is_appointment else []
    if topic == "booking.confirmed":
        return [("confirmed", customer, {})] + [("staff_new", to, {}) for to in staff]
    if topic == "booking.held":
        is_offer = WaitlistEntry.objects.filter(offer=booking).exists()
        return [] if is_offer or booking.total_amount == 0 else [("awaiting_payment", customer, {})]
    if topic == "booking.payment_failed":
        return [("payment_failed", customer, {"reason": payload.get("reason", "")})]
    if topic == "booking.rescheduled":
        return [("rescheduled", customer, {})] + [("staff_changed", to, {}) for to in staff]
    if topic == "booking.cancelled":
        extra = {
            "refund_amount": payload.get("refund_amount", "0"),
            "by_customer": payload.get("by_customer"),
        }
        staff_cancelled = [("staff_cancelled", to, {}) for to in staff]
        return [("cancelled", customer, extra), *staff_cancelled]
    if topic == "waitlist.offered":
        return [("waitlist_offer", customer, {})]
    if topic == "payments.balance_due":
        return [("balance_due", customer, {"amount": payload.get("amount"), "due_at": payload.get("due_at")})]
    if topic == "payments.money_returned":
        return [("money_returned", customer, {})]
    return []


def notifications_dispatch(*, topic: str, payload: dict, now: datetime) -> int:
    """Turn a booking event into one outbox message per email to send (each sent and retried alone)."""
    booking = Booking.objects.select_related("customer", "offering__location").get(pk=payload["booking_id"])
    emails = _emails_for(topic, booking, payload)
    with service_transaction():
        for kind, to, extra in emails:
            outbox_enqueue(
                topic="email.send",
                payload={
                    "booking_id": booking.pk,
                    "kind": kind,
                    "to": to,
                    "extra": extra,
                    "sequence": payload.get("sequence", booking.sequence),  # as of the event
                },
                now=now,
            )
    return len(emails)


def email_send(
    *, booking_id: int, kind: str, to: str, extra: dict, now: datetime, sequence: int | None = None
) -> bool:
    """Send one email about a booking, unless it no longer applies; the timeline records it.

    A reminder for a booking that was cancelled or moved, or a "pay now" for one that is already
    paid, is not sent: the booking as it is now decides.
    """
    from booking.notifications import CONFIRMED_ONLY_KINDS, email_build

    booking = Booking.objects.select_related(
        "customer", "offering__location", "offering__cancellation_policy", "session"
    ).get(pk=booking_id)
    superseded = kind in ("confirmed", "rescheduled", "staff_new", "staff_changed") and (
        sequence is not None and sequence < booking.sequence
    )  # a later change sent its own, newer email: this one would show a state that is gone
    stale = superseded or (
        (
            kind == "reminder"
            and (
                booking.status != BookingStatus.CONFIRMED
                or extra.get("starts_at") != booking.starts_at.isoformat()
            )
        )
        or (kind in ("awaiting_payment", "payment_failed", "waitlist_offer") and not booking.is_holding)
        or (kind == "balance_due" and booking.amount_due <= 0)
        or (kind in CONFIRMED_ONLY_KINDS and booking.status != BookingStatus.CONFIRMED)
    )
    with service_transaction():
        if stale:
            timeline.email_skipped(booking, now=now, kind=kind, to=to)
            return False
        email = email_build(booking=booking, kind=kind, to=to, now=now, extra=extra)
        email.message.send()
        timeline.email_sent(
            booking, now=now, kind=kind, to=to, subject=email.message.subject, sequence=booking.sequence
        )
    return True


def reminders_enqueue_due(*, now: datetime, window: timedelta = timedelta(minutes=30)) -> int:
    """Queue the reminders whose moment has come (each once per start time, so a move re-arms them).

    Run by beat every few minutes. A reminder whose moment passed before the booking was confirmed
    (booked for tomorrow morning at 10 pm) is not sent late.
    """
    queued = 0
    horizon = now + timedelta(hours=max(_all_reminder_offsets(), default=0))
    candidates = Booking.objects.filter(
        status=BookingStatus.CONFIRMED, starts_at__gt=now, starts_at__lte=horizon
    )
    for booking in candidates.select_related("offering", "customer"):
        for hours in booking.offering.reminder_offsets:
            moment = booking.starts_at - timedelta(hours=hours)
            if not (moment <= now < moment + window) or (
                booking.confirmed_at and booking.confirmed_at > moment
            ):
                continue
            with service_transaction():
                queued += bool(
                    outbox_enqueue(
                        topic="email.send",
                        now=now,
                        key=f"reminder:{booking.pk}:{booking.starts_at.isoformat()}:{hours}h",
                        payload={
                            "booking_id": booking.pk,
                            "kind": "reminder",
                            "to": booking.customer.email,
                            "extra": {"starts_at": booking.starts_at.isoformat(), "hours": hours},
                        },
                    )
                )
    return queued


def _all_reminder_offsets() -> list[int]:
    hours = set()
    for value in (
        Offering.objects.exclude(reminder_hours="").values_list("reminder_hours", flat=True).distinct()
    ):
        hours.update(int(h) for h in value.split(",") if h.strip())
    return sorted(hours)


def booking_accept_offer(*, booking: Booking, now: datetime) -> Booking:
    """A customer takes a free place offered from the waitlist (a paid one is accepted by paying)."""
    if booking.total_amount:
        raise NotAllowed("This place is taken by paying for it.")
    if not booking.is_holding:
        raise NotAllowed("This offer is no longer open.")
    return booking_confirm(booking=booking, now=now, actor="customer", data={"accepted": "waitlist offer"})


def booking_attendees_update(
    *,
    booking: Booking,
    names: dict[int, str],
    now: datetime,
    by_customer: bool,
    emails: dict[int, str] | None = None,
    acting_user=None,
    actor: str | None = None,
) -> Booking:
    """Correct who is coming (a typo, a friend instead of another); old and new names are kept.

    *emails* (optional) changes where a place's own emails go (a ticket handed to someone else).

    :raises NotAllowed: the policy keeps names fixed, or the booking has started (for customers).
    :raises InvalidBooking: an empty name or a place not in this booking.
    """
    policy = booking.offering.cancellation_policy
    if by_customer and (policy is None or not policy.attendee_names_editable):
        raise NotAllowed("Names on this booking cannot be changed online. Please contact us.")
    if by_customer and (locked := hook_results("attendee_names_locked", booking=booking)):
        raise NotAllowed(locked[0])
    if by_customer and booking.starts_at <= now:
        raise NotAllowed("This has already started, so names can no longer be changed online.")
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        if booking.status != BookingStatus.CONFIRMED and not booking.is_holding:
            raise NotAllowed("Only an active booking's names can be changed.")
        items = {item.pk: item for item in booking.items.all()}
        changes = []
        emails = emails or {}
        for item_id, name in names.items():
            name = name.strip()[:150]
            if item_id not in items:
                raise InvalidBooking("That place is not part of this booking.")
            if not name:
                raise InvalidBooking("Each place needs a name.")
            item, email = items[item_id], emails.get(item_id, items[item_id].attendee_email).strip()
            if item.attendee_name != name or item.attendee_email != email:
                change = {"item": item_id, "old": item.attendee_name, "new": name}
                if item.attendee_email != email:
                    change |= {"old_email": item.attendee_email, "new_email": email}
                changes.append(change)
                item.attendee_name, item.attendee_email = name, email
        if not changes:
            return booking
        BookingItem.objects.bulk_update(
            [items[c["item"]] for c in changes], ["attendee_name", "attendee_email"]
        )
        booking.updated_at = now
        booking.save(update_fields=["updated_at"])
        timeline.attendees_changed(
            booking,
            now=now,
            acting_user=acting_user,
            actor=actor or ("customer" if by_customer else None),
            changes=changes,
        )
        _announce("booking.attendees_changed", booking, now, changes=changes)
    return booking


def reschedule_options(*, booking: Booking, now: datetime, days: int = 14) -> list:
    """Where a booking could move to: free appointment times or bookable sessions, not its own."""
    from inventory.selectors import appointment_slot_list, session_availability_list

    offering = booking.offering
    end = now + timedelta(days=days)
    if offering.kind == Offering.Kind.APPOINTMENT:
        return [
            s
            for s in appointment_slot_list(offering=offering, start=now, end=end, now=now)
            if s.starts_at != booking.starts_at
        ]
    needed = booking.items.count()
    return [
        s
        for s in session_availability_list(offering=offering, start=now, end=end, now=now)
        if s.session_id != booking.session_id and s.bookable and s.remaining >= needed
    ]


# --- staff operations --------------------------------------------------------------------------------


def booking_mark_no_show(*, booking: Booking, now: datetime, acting_user=None) -> Booking:
    """The customer did not come. (A no-show fee, if the offering has one, is charged by payments.)

    :raises IllegalTransition: only a confirmed booking can be a no-show.
    """
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        check_transition(booking.status, BookingStatus.NO_SHOW)
        if booking.starts_at > now:
            raise NotAllowed("It has not started yet; mark it as a no-show once the time has come.")
        previous = booking.status
        booking.status = BookingStatus.NO_SHOW
        booking.updated_at = now
        booking.save(update_fields=["status", "updated_at"])
        timeline.status_changed(
            booking, now=now, acting_user=acting_user, previous=previous, status=booking.status
        )
        _announce("booking.no_show", booking, now)
    return booking


def booking_attention_resolve(*, booking: Booking, now: datetime, note: str, acting_user=None) -> Booking:
    """A person looked at what was flagged and dealt with it; their note stays on the timeline."""
    note = note.strip()
    if not note:
        raise InvalidBooking("Say what was done, for whoever looks at this booking next.")
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        if not booking.needs_attention:
            raise InvalidBooking("Nothing is waiting for attention on this booking.")
        reason = booking.attention_reason
        booking.needs_attention = False
        booking.attention_reason = ""
        booking.updated_at = now
        booking.save(update_fields=["needs_attention", "attention_reason", "updated_at"])
        timeline.attention_resolved(booking, now=now, acting_user=acting_user, reason=reason, note=note)
    return booking


def booking_confirmation_resend(*, booking: Booking, now: datetime, acting_user=None) -> Booking:
    """Send the confirmation (with its calendar invite) again, as it is now, to the customer."""
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        if booking.status != BookingStatus.CONFIRMED:
            status = booking.get_status_display().lower()
            raise InvalidBooking(
                f"Only a confirmed booking has a confirmation to send; this one is {status}."
            )
        outbox_enqueue(
            topic="email.send",
            payload={
                "booking_id": booking.pk,
                "kind": "confirmed",
                "to": booking.customer.email,
                "extra": {"resent": True},
                "sequence": booking.sequence,
            },
            now=now,
        )
        timeline.confirmation_resent(booking, now=now, acting_user=acting_user, to=booking.customer.email)
    return booking


def customer_details_correct(
    *, booking: Booking, name: str, email: str, phone: str, now: datetime, acting_user=None
) -> Customer:
    """Correct the booker's name, email or phone (a typo at the desk); old and new values are kept.

    :raises InvalidBooking: the email is not valid, or belongs to another customer (merge them instead).
    """
    name, email, phone = name.strip(), email.strip().lower(), phone.strip()
    if not name:
        raise InvalidBooking("The customer needs a name.")
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidBooking(f"{email!r} is not an email address.") from None
    with service_transaction():
        booking = lock_booking(booking_id=booking.pk)
        customer = Customer.objects.select_for_update().get(pk=booking.customer_id)
        if Customer.objects.filter(email__iexact=email).exclude(pk=customer.pk).exists():
            raise InvalidBooking(f"Another customer already uses {email}; it cannot be given to this one.")
        before = {"name": customer.name, "email": customer.email, "phone": customer.phone}
        after = {"name": name, "email": email, "phone": phone}
        changes = {field: [before[field], after[field]] for field in before if before[field] != after[field]}
        if not changes:
            return customer
        Customer.objects.filter(pk=customer.pk).update(**after)
        timeline.customer_corrected(booking, now=now, acting_user=acting_user, changes=changes)
        customer.refresh_from_db()
    return customer
