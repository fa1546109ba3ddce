"""Payment plans for the demo business: a deposit, pay on arrival with a no-show fee, full payment."""

from decimal import Decimal

from inventory.models import Offering
from payments.models import PaymentPlan

PLANS = {
    # 30 % now, the rest paid at the salon
    "colour-and-cut": {"kind": PaymentPlan.Kind.DEPOSIT, "deposit_percent": 30},
    "scalp-ritual": {"kind": PaymentPlan.Kind.ON_ARRIVAL, "no_show_fee": Decimal("15.00")},
}


def seed(*, now, log) -> None:
    for slug, plan in PLANS.items():
        offering = Offering.objects.filter(slug=slug).first()
        if offering is not None:
            PaymentPlan.objects.get_or_create(offering=offering, defaults=plan)
    log(f"demo: {PaymentPlan.objects.count()} payment plans (the rest are paid in full when booking)")
