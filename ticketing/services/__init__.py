"""Writes of ticketing: tickets follow their booking, transfers and resale, and scans at the door.

Tickets are never edited in place. `tickets_sync` compares what a booking's places are now (who,
which session, which seat) with its valid tickets, revokes every ticket that no longer matches and
issues a new one with a new signed code: confirming, cancelling, moving, renaming, transferring
and reselling all come down to that one idempotent step, run under the booking's lock.

Scans are recorded as the devices report them (each with the id the device made) and judged in the
order they happened, not the order they arrived: an offline door syncing late can turn a scan
another door saw as "valid" into the second entry. Both are kept; the later one is flagged.

One module per rule (see each module's opening line); this package re-exports every public service
so callers import from `ticketing.services` as before.
"""

from ticketing.services.door_devices import door_device_authenticate, door_device_register, door_device_revoke
from ticketing.services.errors import InvalidRequest, NotAllowed, TicketingError
from ticketing.services.resale import (
    resale_buy,
    resale_complete,
    resale_list,
    resale_release,
    resale_withdraw,
)
from ticketing.services.scans import ADMITTED, GATE_RESULTS, ScanOutcome, ScanReport, scans_record
from ticketing.services.tickets import (
    REASONS,
    TICKETED_KINDS,
    TicketChanges,
    booking_is_ticketed,
    ticket_revoke,
    tickets_sync,
)
from ticketing.services.transfers import ticket_transfer, ticket_transfer_cancel, transfer_fee_settled

__all__ = [
    "ADMITTED",
    "GATE_RESULTS",
    "REASONS",
    "TICKETED_KINDS",
    "InvalidRequest",
    "NotAllowed",
    "ScanOutcome",
    "ScanReport",
    "TicketChanges",
    "TicketingError",
    "booking_is_ticketed",
    "door_device_authenticate",
    "door_device_register",
    "door_device_revoke",
    "resale_buy",
    "resale_complete",
    "resale_list",
    "resale_release",
    "resale_withdraw",
    "scans_record",
    "ticket_revoke",
    "ticket_transfer",
    "ticket_transfer_cancel",
    "tickets_sync",
    "transfer_fee_settled",
]
