"""What payments adds to pages of apps below it (they ask through core.hooks, never importing payments)."""

from core.hooks import hook
from payments.selectors import plan_summary


@hook("offering_terms")
def offering_payment_terms(*, offering) -> list[str]:
    return plan_summary(offering=offering)
