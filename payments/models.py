"""Payment plans, Stripe payments and refunds, and the webhook events already handled.

Amounts are kept in the currency's minor unit (cents, pence, yen) as Stripe counts them, so what we
store and what Stripe reports compare exactly.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from booking.models import Booking, BookingCharge, Customer
from inventory.models import Offering
from payments.money import money


class PaymentPlan(models.Model):
    """How an offering is paid. Without a plan, a priced offering is paid in full when booked."""

    class Kind(models.TextChoices):
        FULL = "full", "Full payment when booking"
        DEPOSIT = "deposit", "Deposit now, balance later"
        ON_ARRIVAL = "on_arrival", "Pay on arrival (card secured now)"

    offering = models.OneToOneField(Offering, on_delete=models.CASCADE, related_name="payment_plan")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.FULL)
    deposit_percent = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(99)]
    )
    deposit_amount = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    balance_due_days_before = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Deposit plans: days before the start the balance is due; empty = on arrival.",
    )
    authorization_window_days = models.PositiveSmallIntegerField(
        default=6,
        validators=[MinValueValidator(1), MaxValueValidator(7)],
        help_text="Pay on arrival: bookings starting within this many days get a card authorisation "
        "(banks keep them about a week); later ones save the card and are charged off-session.",
    )
    no_show_fee = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Charged to the saved card when staff mark a no-show (checkout then saves the card).",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="deposit")
                | Q(deposit_percent__isnull=False, deposit_amount__isnull=True)
                | Q(deposit_percent__isnull=True, deposit_amount__isnull=False),
                name="deposit_percent_or_amount",
                violation_error_message="A deposit plan needs either a percentage or a fixed amount.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.offering}: {self.get_kind_display()}"


class StripeCustomer(models.Model):
    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="stripe")
    stripe_customer_id = models.CharField(max_length=255, unique=True)

    def __str__(self) -> str:
        return self.stripe_customer_id


class Payment(models.Model):
    """One Stripe PaymentIntent (or SetupIntent) for a booking, and what Stripe last said of it."""

    class Purpose(models.TextChoices):
        INITIAL = "initial", "Payment when booking"
        BALANCE = "balance", "Balance"
        AUTHORIZATION = "authorization", "Card authorisation (pay on arrival)"
        CARD_SETUP = "card_setup", "Card saved for later"
        NO_SHOW_FEE = "no_show_fee", "No-show fee"
        CHARGE = "charge", "Fee asked after booking"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the customer"
        PROCESSING = "processing", "Processing"
        AUTHORIZED = "authorized", "Authorised, not captured"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Cancelled / released"

    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="payments")
    booking_charge = models.ForeignKey(
        BookingCharge, null=True, blank=True, on_delete=models.PROTECT, related_name="payments"
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempt = models.PositiveSmallIntegerField(default=1)
    idempotency_key = models.CharField(max_length=120, unique=True)
    amount = models.PositiveIntegerField(help_text="In the currency's minor unit (e.g. cents).")
    currency = models.CharField(max_length=3)
    amount_received = models.PositiveIntegerField(default=0)
    amount_capturable = models.PositiveIntegerField(default=0)
    amount_refunded = models.PositiveIntegerField(default=0)
    stripe_payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_setup_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    stripe_payment_method_id = models.CharField(max_length=255, blank=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True)
    client_secret = models.CharField(
        max_length=255, blank=True, help_text="Lets the checkout page finish it."
    )
    failure_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["booking", "created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_refunded__lte=models.F("amount_received")),
                name="payment_refund_within_received",
            ),
            models.UniqueConstraint(
                fields=["booking", "purpose"],
                condition=Q(status__in=["pending", "processing", "authorized", "succeeded"])
                & Q(purpose__in=["initial", "authorization", "card_setup", "balance"]),
                name="payment_one_live_per_purpose",
            ),
            models.UniqueConstraint(
                fields=["booking_charge"],
                condition=Q(status__in=["pending", "processing", "succeeded"]),
                name="payment_one_live_per_charge",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_purpose_display()} {money(self.amount, self.currency)} ({self.get_status_display()})"
        )

    @property
    def refundable(self) -> int:
        return self.amount_received - self.amount_refunded


class Refund(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Requested"
        SUCCEEDED = "succeeded", "Refunded"
        FAILED = "failed", "Failed"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=200, blank=True)
    idempotency_key = models.CharField(max_length=160, unique=True)
    stripe_refund_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    requested_by = models.CharField(max_length=150)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["payment", "created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive")]

    def __str__(self) -> str:
        return f"Refund {money(self.amount, self.payment.currency)} ({self.get_status_display()})"


class WebhookEvent(models.Model):
    """A Stripe event we processed; a replay of the same id changes nothing."""

    stripe_event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=255, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_event_id}"
