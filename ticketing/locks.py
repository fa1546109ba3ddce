"""The only place ticketing rows are locked (after booking rows)."""

from core.transactions import require_atomic
from ticketing.models import ResaleListing, Ticket


def lock_ticket(*, ticket_id: int) -> Ticket:
    """Serialise scans of one ticket, so two doors cannot both be first."""
    require_atomic("lock_ticket")
    return (
        Ticket.objects.select_for_update(of=("self",)).select_related("session", "booking").get(pk=ticket_id)
    )


def lock_tickets(*, ticket_ids: list[int]) -> list[Ticket]:
    require_atomic("lock_tickets")
    return list(
        Ticket.objects.select_for_update(of=("self",)).filter(pk__in=sorted(ticket_ids)).order_by("pk")
    )


def lock_listing(*, listing_id: int) -> ResaleListing:
    """One buyer at a time per resale listing."""
    require_atomic("lock_listing")
    return (
        ResaleListing.objects.select_for_update(of=("self",))
        .select_related("ticket__booking_item", "ticket__booking", "buyer_booking")
        .get(pk=listing_id)
    )
