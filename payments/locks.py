"""The only place payment rows are locked (after the booking row, before capacity rows)."""

from core.transactions import require_atomic
from payments.models import Payment


def lock_payment(*, payment_id: int) -> Payment:
    require_atomic("lock_payment")
    return Payment.objects.select_for_update(of=("self",)).get(pk=payment_id)


def lock_booking_payments(*, booking_id: int) -> list[Payment]:
    require_atomic("lock_booking_payments")
    return list(Payment.objects.select_for_update(of=("self",)).filter(booking_id=booking_id).order_by("pk"))
