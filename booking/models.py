"""Customers, bookings and their items, and the waitlist.

A booking is the hold: while it is `held` (or `awaiting_payment`) until `hold_expires_at`, its places
are counted as `held` in inventory and its appointment time is allocated; confirming turns them into
`sold`; expiring or cancelling gives them back. Status changes go through `booking.services` and the
transitions table in `booking.states`, never through `save()`.
"""

import secrets

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from inventory.models import Offering, Seat, Session, TicketType, Zone

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out over the phone


def new_reference() -> str:
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))


class Customer(models.Model):
    """Whoever books: a guest identified by email, or a registered user."""

    name = models.CharField(max_length=150)
    email = models.EmailField()
    phone = models.CharField(max_length=40, blank=True)
    time_zone = models.CharField(max_length=64, blank=True, help_text="Shown alongside the venue's time.")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="customer"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(models.functions.Lower("email"), name="customer_email_unique_ci"),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


class BookingStatus(models.TextChoices):
    HELD = "held", "Held"
    AWAITING_PAYMENT = "awaiting_payment", "Pending payment"
    CONFIRMED = "confirmed", "Confirmed"
    COMPLETED = "completed", "Completed"
    NO_SHOW = "no_show", "No-show"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    REFUNDED = "refunded", "Refunded"


HOLDING_STATUSES = (BookingStatus.HELD, BookingStatus.AWAITING_PAYMENT, BookingStatus.PAYMENT_FAILED)
SOLD_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.COMPLETED, BookingStatus.NO_SHOW)


class Booking(models.Model):
    reference = models.CharField(max_length=12, unique=True, default=new_reference, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="bookings")
    offering = models.ForeignKey(Offering, on_delete=models.PROTECT, related_name="bookings")
    session = models.ForeignKey(
        Session, null=True, blank=True, on_delete=models.PROTECT, related_name="bookings"
    )
    status = models.CharField(max_length=20, choices=BookingStatus.choices)
    starts_at = models.DateTimeField(help_text="When the appointment or session starts.")
    ends_at = models.DateTimeField()
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=80, unique=True)
    total_amount = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(0)])
    amount_paid = models.DecimalField(
        max_digits=10, decimal_places=2, default=0, help_text="Received, as the payment provider reports it."
    )
    amount_refunded = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    currency = models.CharField(max_length=3)
    sequence = models.PositiveIntegerField(default=0, help_text="Raised on every change (calendar invites).")
    needs_attention = models.BooleanField(default=False)
    attention_reason = models.TextField(blank=True)
    notes = models.TextField(blank=True, help_text="Customer's message to the business.")
    created_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        permissions = [
            ("view_reports", "Can see the business reports"),
            ("refund_any_amount", "Can refund more than the front-desk limit"),
        ]
        indexes = [
            models.Index(
                fields=["status", "hold_expires_at"],
                name="booking_hold_expiry",
                condition=Q(status__in=["held", "awaiting_payment", "payment_failed"]),
            ),
            models.Index(fields=["session", "status"], name="booking_session_status"),
            models.Index(fields=["starts_at"], name="booking_starts"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="booking_end_after_start"),
            models.CheckConstraint(condition=Q(total_amount__gte=0), name="booking_total_not_negative"),
            models.CheckConstraint(
                condition=~Q(status__in=["held", "awaiting_payment", "payment_failed"])
                | Q(hold_expires_at__isnull=False),
                name="booking_hold_has_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.offering} ({self.get_status_display()})"

    @property
    def is_holding(self) -> bool:
        return self.status in HOLDING_STATUSES

    @property
    def display_status(self) -> str:
        """The status customers and staff see: exactly one of five, whatever happened inside."""
        if self.status == BookingStatus.REFUNDED or (
            self.amount_refunded and self.amount_refunded >= self.amount_paid
        ):
            return "Refunded (fully)"
        if self.amount_refunded:
            return "Refunded (partially)"
        if self.status in (BookingStatus.HELD, BookingStatus.AWAITING_PAYMENT):
            return "Pending payment"
        if self.status == BookingStatus.PAYMENT_FAILED:
            return "Payment failed"
        if self.status in SOLD_STATUSES:
            return "Confirmed"
        return "Cancelled"

    @property
    def amount_due(self):
        """What is still to be paid (a deposit booking's balance)."""
        return max(self.total_amount - self.amount_paid, 0)


class BookingItem(models.Model):
    """One place: the appointment itself, a place in a class, or one event ticket, with its attendee."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="items")
    ticket_type = models.ForeignKey(
        TicketType, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    zone = models.ForeignKey(Zone, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    seat = models.ForeignKey(Seat, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    price = models.DecimalField(max_digits=10, decimal_places=2)
    price_name = models.CharField(max_length=80, blank=True, help_text="e.g. Early bird")
    attendee_name = models.CharField(max_length=150)
    attendee_email = models.EmailField(blank=True)
    resold = models.BooleanField(
        default=False, help_text="Resold through the platform: the place is someone else's."
    )
    resale_of = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="resold_to",
        help_text="Bought on resale: the place came from this item, not from the capacity counters.",
    )

    class Meta:
        ordering = ["booking", "id"]
        constraints = [models.CheckConstraint(condition=Q(price__gte=0), name="item_price_not_negative")]

    def __str__(self) -> str:
        what = self.ticket_type.name if self.ticket_type_id else "place"
        return f"{what} for {self.attendee_name}"

    @property
    def holder(self) -> str:
        """How inventory knows this item (allocations and seats carry it)."""
        return f"booking_item:{self.pk}"


class BookingCharge(models.Model):
    """Money asked of a booking after it was made (a ticket transfer fee), paid on its own.

    Once paid it joins the booking's total, so what is paid and what is due stay truthful.
    """

    class Status(models.TextChoices):
        DUE = "due", "To pay"
        PAID = "paid", "Paid"
        CANCELLED = "cancelled", "Cancelled"

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="charges")
    description = models.CharField(max_length=200)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DUE)
    reference = models.CharField(
        max_length=80,
        unique=True,
        help_text="What asked for it, e.g. ticket-transfer-12 (one charge per cause).",
    )
    created_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["booking", "id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="charge_amount_positive")]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount} ({self.get_status_display()})"


class WaitlistEntry(models.Model):
    """Someone who wants places in a sold-out session, offered a hold when places free up."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        OFFERED = "offered", "Offered a place"
        BOOKED = "booked", "Booked"
        LAPSED = "lapsed", "Offer lapsed"
        LEFT = "left", "Left the waitlist"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="waitlist")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="waitlist_entries")
    quantity = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    ticket_type = models.ForeignKey(
        TicketType, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    offer = models.OneToOneField(
        Booking, null=True, blank=True, on_delete=models.SET_NULL, related_name="waitlist_entry"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "waitlist entries"
        ordering = ["session", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "customer"],
                condition=Q(status__in=["waiting", "offered"]),
                name="waitlist_once_per_session",
                violation_error_message="You are already on the waitlist for this session.",
            ),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="waitlist_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.customer} × {self.quantity} ({self.get_status_display()})"
