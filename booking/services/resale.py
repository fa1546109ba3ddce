"""A place resold by its holder: the buyer's hold (no capacity moves until they have paid) and, on
confirmation, the place taken over from the seller's booking. Locks the seller's booking only if
nobody else has it (`lock_bookings_if_free`): the buyer's, locked first, has the higher key.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from booking import timeline
from booking.locks import lock_bookings_if_free
from booking.models import (
    SOLD_STATUSES,
    Booking,
    BookingItem,
    BookingStatus,
)
from booking.services._shared import (
    _announce,
    _customer_for,
    _in_one_transaction,
    _require_key,
    _schedule_expiry,
)
from booking.services.errors import CapacityGone, InvalidBooking
from booking.services.requests import CustomerDetails
from inventory.locks import CapacityBusy
from inventory.models import SeatAllocation


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
