"""What goes wrong with a ticket, a transfer, a resale or a door device, as errors people can act
on. Locks nothing.
"""

from __future__ import annotations

from core.errors import ApplicationError


class TicketingError(ApplicationError):
    """A ticket request that cannot be done as asked; the message says why."""


class NotAllowed(TicketingError):
    default_code = "not_allowed"


class InvalidRequest(TicketingError):
    default_code = "invalid"
