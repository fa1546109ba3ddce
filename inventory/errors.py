"""Why a place or a time could not be had, in words a customer can act on."""

from core.errors import ApplicationError


class Unavailable(ApplicationError):
    """The places or time asked for cannot be had right now."""

    default_code = "unavailable"


class SoldOut(Unavailable):
    default_code = "sold_out"


class SlotTaken(Unavailable):
    default_code = "slot_taken"


class SeatTaken(Unavailable):
    default_code = "seat_taken"
