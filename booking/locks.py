"""The only place booking rows are locked. Booking rows are always locked before capacity rows; a
booking's customer after the booking."""

from booking.models import Booking, Customer
from core.transactions import require_atomic


def lock_booking(*, booking_id: int) -> Booking:
    """Lock one booking for a state change, waiting for whoever holds it."""
    require_atomic("lock_booking")
    return (
        Booking.objects.select_for_update(of=("self",))
        .select_related(
            "offering", "offering__location", "offering__cancellation_policy", "session", "customer"
        )
        .get(pk=booking_id)
    )


def lock_bookings_if_free(*, booking_ids: list[int]) -> list[Booking]:
    """Lock the bookings nobody else is working on, skipping the rest.

    Used to release expired holds lazily while capacity rows are already locked: waiting for a
    booking row then would invert the booking-then-capacity order and could deadlock, and whoever
    holds that booking (a confirmation, the sweeper) is dealing with it anyway.
    """
    require_atomic("lock_bookings_if_free")
    return list(
        Booking.objects.select_for_update(of=("self",), skip_locked=True)
        .filter(pk__in=sorted(booking_ids))
        .order_by("pk")
    )


def lock_customer(*, customer_id: int) -> Customer:
    """Lock a customer to change their details (after locking the booking the change comes from)."""
    require_atomic("lock_customer")
    return Customer.objects.select_for_update(of=("self",)).get(pk=customer_id)
