"""What goes wrong with a payment, as errors staff and customers can act on. Locks nothing."""

from __future__ import annotations

from core.errors import ApplicationError


class PaymentError(ApplicationError):
    default_code = "payment_error"


class NotPayable(PaymentError):
    default_code = "not_payable"


class RefundTooLarge(PaymentError):
    default_code = "refund_too_large"
