"""The booking life cycle in one table, checked by one function.

    held → awaiting_payment → confirmed → completed | no_show
    exits: cancelled, expired, payment_failed, refunded

"Needs attention" is a flag next to the status (`Booking.needs_attention`), not a status: a booking
that needs a person (a late payment, a calendar conflict) still has a truthful status, e.g. a
confirmed booking whose staff member moved it in their calendar.
"""

from booking.models import BookingStatus as S
from core.errors import ApplicationError

TRANSITIONS: dict[str, frozenset[str]] = {
    S.HELD: frozenset({S.AWAITING_PAYMENT, S.CONFIRMED, S.EXPIRED, S.CANCELLED, S.PAYMENT_FAILED}),
    S.AWAITING_PAYMENT: frozenset({S.CONFIRMED, S.PAYMENT_FAILED, S.EXPIRED, S.CANCELLED}),
    S.PAYMENT_FAILED: frozenset({S.AWAITING_PAYMENT, S.CONFIRMED, S.EXPIRED, S.CANCELLED}),
    S.CONFIRMED: frozenset({S.COMPLETED, S.NO_SHOW, S.CANCELLED, S.REFUNDED}),
    S.COMPLETED: frozenset({S.REFUNDED}),
    S.NO_SHOW: frozenset({S.REFUNDED}),
    S.CANCELLED: frozenset({S.REFUNDED}),
    # A payment that lands after its hold died still books when the places are free again; if not,
    # the money goes back and the booking ends refunded.
    S.EXPIRED: frozenset({S.CONFIRMED, S.REFUNDED}),
    S.REFUNDED: frozenset(),
}


class IllegalTransition(ApplicationError):
    default_code = "illegal_transition"


def check_transition(current: str, target: str) -> None:
    """Raise `IllegalTransition` unless a booking may go from *current* to *target*."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(
            f"A booking that is {S(current).label.lower()} cannot become {S(target).label.lower()}.",
            extra={"from": current, "to": target},
        )
