"""What goes wrong when booking, as errors a customer or a client can act on (`ApplicationError`s
with a code). Locks nothing.
"""

from __future__ import annotations

from core.errors import ApplicationError


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
