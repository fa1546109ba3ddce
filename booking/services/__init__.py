"""Writes of bookings: hold, confirm, expire, cancel, reschedule, and the waitlist.

Every use case has the same shape (after pretix's order services): validate the request with
messages a customer can act on → open one transaction → lock the booking row (if it
exists), then the capacity rows (`inventory.locks`, in key order, once) → check and write → record the
timeline entry and the outbox messages in the same transaction → commit once. Nothing is sent for a
change that rolled back, and every change is on the booking's timeline.

One module per rule (see each module's opening line); this package re-exports every public service
so callers import from `booking.services` as before.
"""

from booking.services._shared import ITEM_HOLDER_PREFIX
from booking.services.attendees import booking_attendees_update
from booking.services.cancellation import RefundQuote, booking_cancel, cancellation_quote
from booking.services.confirmation import booking_accept_offer, booking_await_payment, booking_confirm
from booking.services.emails import email_enqueue, email_send, notifications_dispatch, reminders_enqueue_due
from booking.services.errors import (
    BookingError,
    CapacityGone,
    IdempotencyConflict,
    InvalidBooking,
    NotAllowed,
)
from booking.services.expiry import booking_expire, hold_release_expired
from booking.services.holds import booking_hold_appointment, booking_hold_session
from booking.services.money import (
    booking_charge_add,
    booking_charge_settle,
    booking_flag_attention,
    booking_money_update,
    booking_payment_failed,
)
from booking.services.reconciliation import Drift, capacity_reconcile
from booking.services.requests import CustomerDetails, TicketRequest
from booking.services.resale import booking_hold_resale
from booking.services.rescheduling import booking_reschedule, reschedule_options
from booking.services.staff import (
    booking_attention_resolve,
    booking_confirmation_resend,
    booking_mark_no_show,
    customer_details_correct,
)
from booking.services.waitlist import waitlist_join, waitlist_leave, waitlist_offer_next

__all__ = [
    "ITEM_HOLDER_PREFIX",
    "BookingError",
    "CapacityGone",
    "CustomerDetails",
    "Drift",
    "IdempotencyConflict",
    "InvalidBooking",
    "NotAllowed",
    "RefundQuote",
    "TicketRequest",
    "booking_accept_offer",
    "booking_attendees_update",
    "booking_attention_resolve",
    "booking_await_payment",
    "booking_cancel",
    "booking_charge_add",
    "booking_charge_settle",
    "booking_confirm",
    "booking_confirmation_resend",
    "booking_expire",
    "booking_flag_attention",
    "booking_hold_appointment",
    "booking_hold_resale",
    "booking_hold_session",
    "booking_mark_no_show",
    "booking_money_update",
    "booking_payment_failed",
    "booking_reschedule",
    "cancellation_quote",
    "capacity_reconcile",
    "customer_details_correct",
    "email_enqueue",
    "email_send",
    "hold_release_expired",
    "notifications_dispatch",
    "reminders_enqueue_due",
    "reschedule_options",
    "waitlist_join",
    "waitlist_leave",
    "waitlist_offer_next",
]
