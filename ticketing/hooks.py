"""What ticketing adds to pages and rules of apps below it (asked through core.hooks)."""

from django.urls import reverse

from core.hooks import hook
from ticketing.selectors import policy_for, resale_summary
from ticketing.services import TICKETED_KINDS


@hook("attendee_names_locked")
def names_follow_transfer_rules(*, booking) -> str | None:
    """Renaming a ticket is a transfer: where the organiser restricts transfers, the manage page cannot."""
    if booking.offering.kind not in TICKETED_KINDS:
        return None
    policy = policy_for(offering=booking.offering)
    if not policy.name_change_allowed or not policy.transfers_allowed or policy.transfer_fee > 0:
        return "Names on these tickets change through a ticket transfer: open your tickets to transfer one."
    return None


@hook("session_resale_offers")
def resale_offers_by_session(*, offering, now) -> dict[int, dict]:
    if offering.kind not in TICKETED_KINDS:
        return {}
    return {
        session_id: {**row, "url": reverse("ticketing:resale", args=[session_id])}
        for session_id, row in resale_summary(offering=offering, now=now).items()
    }


@hook("booking_page_links")
def tickets_link(*, booking, token) -> list[tuple[str, str]]:
    if booking.offering.kind not in TICKETED_KINDS or booking.status != "confirmed":
        return []
    return [("Your tickets", reverse("ticketing:booking_tickets", args=[token]))]
