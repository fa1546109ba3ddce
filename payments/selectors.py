"""Reads of payments: what a booking costs now and later, and what has been paid and refunded."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import QuerySet

from booking.models import Booking
from payments.models import Payment, PaymentPlan, Refund


@dataclass(frozen=True)
class PaymentTerms:
    """How a booking is paid, spelled out for the checkout page and the emails."""

    method: str  # none | charge | authorize | setup
    amount_now: Decimal
    amount_later: Decimal = Decimal("0.00")
    later_due_at: datetime | None = None
    later_on_arrival: bool = False
    save_card: bool = False
    no_show_fee: Decimal | None = None
    lines: list[str] = field(default_factory=list)


def _plan(offering) -> PaymentPlan | None:
    try:
        return offering.payment_plan
    except PaymentPlan.DoesNotExist:
        return None


def payment_terms(*, booking: Booking, now: datetime) -> PaymentTerms:
    """What the customer pays now, what later and when, under the offering's plan."""
    total, currency = booking.total_amount, booking.currency
    plan = _plan(booking.offering)
    fee = plan.no_show_fee if plan and plan.no_show_fee else None
    fee_line = (
        [f"A no-show fee of {fee} {currency} may be charged to your card if you do not come."] if fee else []
    )
    if total == 0:
        return PaymentTerms("none", Decimal("0.00"), lines=["Nothing to pay."])
    if booking.pk and booking.items.filter(resale_of__isnull=False).exists():
        # The seller is refunded the moment this is paid, so a resale is always paid in full.
        return PaymentTerms("charge", total, lines=[f"Pay {total} {currency} now (resale ticket)."])
    if plan is None or plan.kind == PaymentPlan.Kind.FULL:
        return PaymentTerms(
            "charge",
            total,
            save_card=bool(fee),
            no_show_fee=fee,
            lines=[f"Pay {total} {currency} now.", *fee_line],
        )
    if plan.kind == PaymentPlan.Kind.DEPOSIT:
        if plan.deposit_percent:
            deposit = (total * plan.deposit_percent / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        else:
            deposit = min(plan.deposit_amount or Decimal("0"), total)
        later = total - deposit
        due = (
            booking.starts_at - timedelta(days=plan.balance_due_days_before)
            if plan.balance_due_days_before
            else None
        )
        if later == 0 or (due is not None and due <= now):
            return PaymentTerms(
                "charge",
                total,
                save_card=bool(fee),
                no_show_fee=fee,
                lines=[f"Pay {total} {currency} now (the balance is already due).", *fee_line],
            )
        when = f"by {due:%d %b %Y}; we email you a link to pay it" if due else "when you arrive"
        return PaymentTerms(
            "charge",
            deposit,
            later,
            later_due_at=due,
            later_on_arrival=due is None,
            save_card=bool(fee),
            no_show_fee=fee,
            lines=[
                f"Pay a deposit of {deposit} {currency} now.",
                f"Pay the balance of {later} {currency} {when}.",
                *fee_line,
            ],
        )
    # Pay on arrival: banks keep a card authorisation for about a week.
    if booking.starts_at - now <= timedelta(days=plan.authorization_window_days):
        return PaymentTerms(
            "authorize",
            Decimal("0.00"),
            total,
            later_on_arrival=True,
            save_card=bool(fee),
            no_show_fee=fee,
            lines=[
                f"Nothing is taken now: we reserve {total} {currency} on your card "
                "and take it when you arrive.",
                *fee_line,
            ],
        )
    return PaymentTerms(
        "setup",
        Decimal("0.00"),
        total,
        later_on_arrival=True,
        save_card=True,
        no_show_fee=fee,
        lines=[
            f"Nothing is taken now: your card is saved and {total} {currency} is reserved on it a few days "
            "before your visit, then taken when you arrive.",
            *fee_line,
        ],
    )


def payments_for_booking(*, booking: Booking) -> QuerySet[Payment]:
    return Payment.objects.filter(booking=booking).prefetch_related("refunds").order_by("created_at", "id")


def refunds_for_booking(*, booking: Booking) -> QuerySet[Refund]:
    return Refund.objects.filter(payment__booking=booking).select_related("payment").order_by("created_at")


def live_payment(*, booking: Booking, purposes: tuple[str, ...]) -> Payment | None:
    """The payment of this booking still in play for one of *purposes* (pending to succeeded)."""
    return (
        Payment.objects.filter(booking=booking, purpose__in=purposes)
        .exclude(status__in=[Payment.Status.FAILED, Payment.Status.CANCELED])
        .order_by("-created_at")
        .first()
    )


def plan_summary(*, offering) -> list[str]:
    """How an offering is paid, in a line or two for its page (before anything is booked)."""
    plan = _plan(offering)
    priced = offering.price > 0 or offering.ticket_types.filter(price__gt=0).exists()
    if not priced:
        return ["Free: nothing to pay."]
    lines = []
    if plan is None or plan.kind == PaymentPlan.Kind.FULL:
        lines.append("Paid in full by card when you book.")
    elif plan.kind == PaymentPlan.Kind.DEPOSIT:
        deposit = (
            f"{plan.deposit_percent}%"
            if plan.deposit_percent
            else f"{plan.deposit_amount} {offering.currency}"
        )
        later = (
            f"{plan.balance_due_days_before} days before (we email you a link)"
            if plan.balance_due_days_before
            else "when you arrive"
        )
        lines.append(f"A deposit of {deposit} when you book; the rest {later}.")
    else:
        lines.append("Nothing is taken online: your card secures the booking and is charged when you arrive.")
    if plan and plan.no_show_fee:
        lines.append(
            f"If you do not come, a no-show fee of {plan.no_show_fee} {offering.currency} is charged."
        )
    return lines
