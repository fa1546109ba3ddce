"""What payments adds to pages of apps below it (they ask through core.hooks, never importing payments)."""

from core.hooks import hook
from payments.models import Payment
from payments.selectors import plan_summary


@hook("offering_terms")
def offering_payment_terms(*, offering) -> list[str]:
    return plan_summary(offering=offering)


@hook("bookings_paying_on_arrival")
def bookings_with_card_authorised(*, booking_ids: list[int]) -> set[int]:
    """Of these bookings, those whose card is authorised: taken when they arrive, so not unpaid."""
    return set(
        Payment.objects.filter(
            booking_id__in=booking_ids,
            purpose=Payment.Purpose.AUTHORIZATION,
            status=Payment.Status.AUTHORIZED,
        ).values_list("booking_id", flat=True)
    )
