"""What is sold: offerings, their categories, cancellation policies with refund tiers, and the resources
an appointment needs.
"""

from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from inventory.models.fields import CURRENCY_VALIDATOR, REMINDER_HOURS_VALIDATOR
from inventory.models.places import Location, Resource


class Category(models.Model):
    name = models.CharField(max_length=80)
    slug = models.SlugField(unique=True)

    class Meta:
        verbose_name_plural = "categories"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CancellationPolicy(models.Model):
    """How much a customer gets back when they cancel, by how long before the start they do it."""

    name = models.CharField(max_length=80, unique=True)
    description = models.TextField(blank=True, help_text="Shown to customers before they pay.")
    customer_can_cancel = models.BooleanField(default=True)
    customer_can_reschedule = models.BooleanField(default=True)
    reschedule_min_notice = models.DurationField(default=timedelta(hours=24))
    attendee_names_editable = models.BooleanField(
        default=True, help_text="Customers may correct attendee names until the start."
    )

    class Meta:
        verbose_name_plural = "cancellation policies"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RefundTier(models.Model):
    """Cancel at least `min_notice` before the start and get `refund_percent` back."""

    policy = models.ForeignKey(CancellationPolicy, on_delete=models.CASCADE, related_name="tiers")
    min_notice = models.DurationField(help_text="e.g. 2 days, 0:00:00 for any time before the start")
    refund_percent = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["policy", "-min_notice"]
        constraints = [
            models.CheckConstraint(condition=Q(refund_percent__lte=100), name="refund_percent_at_most_100"),
            models.CheckConstraint(
                condition=Q(min_notice__gte=timedelta(0)), name="refund_notice_not_negative"
            ),
            models.UniqueConstraint(fields=["policy", "min_notice"], name="refund_tier_notice_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.refund_percent}% with {self.min_notice} notice"


class Offering(models.Model):
    """Something customers book: an appointment, a class or a ticketed event."""

    class Kind(models.TextChoices):
        APPOINTMENT = "appointment", "Appointment"
        CLASS = "class", "Class"
        EVENT = "event", "Event"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    name = models.CharField(max_length=160)
    slug = models.SlugField(unique=True)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="offerings")
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    description = models.TextField(blank=True)
    restrictions = models.TextField(
        blank=True, help_text="Shown before payment: age limits, what to bring, health conditions …"
    )
    is_published = models.BooleanField(default=True)

    price = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Per appointment or per place; events price their ticket types instead.",
    )
    currency = models.CharField(max_length=3, default="EUR", validators=[CURRENCY_VALIDATOR])

    sales_open_at = models.DateTimeField(null=True, blank=True, help_text="Empty: on sale now.")
    sales_close_at = models.DateTimeField(null=True, blank=True, help_text="Empty: until the notice limit.")
    min_notice = models.DurationField(default=timedelta(0), help_text="Latest booking before the start.")
    horizon = models.DurationField(default=timedelta(days=60), help_text="How far ahead customers may book.")
    hold_minutes = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1)], help_text="How long a place is held during checkout."
    )
    waitlist_enabled = models.BooleanField(default=False)
    waitlist_offer_minutes = models.PositiveIntegerField(
        default=12 * 60,
        validators=[MinValueValidator(5)],
        help_text="How long someone offered a place from the waitlist has to take it.",
    )
    max_places_per_booking = models.PositiveSmallIntegerField(default=10, validators=[MinValueValidator(1)])
    reminder_hours = models.CharField(
        max_length=40,
        default="24,2",
        blank=True,
        validators=[REMINDER_HOURS_VALIDATOR],
        help_text="When to email a reminder, in hours before the start, e.g. 24,2. Empty: no reminders.",
    )
    cancellation_policy = models.ForeignKey(
        CancellationPolicy,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="offerings",
        help_text="Empty: customers cannot cancel online.",
    )

    # Appointments
    duration = models.DurationField(null=True, blank=True)
    slot_interval = models.DurationField(null=True, blank=True, help_text="Start times every …, e.g. 0:15:00")
    buffer_before = models.DurationField(default=timedelta(0))
    buffer_after = models.DurationField(default=timedelta(0))
    daily_limit_per_resource = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="At most this many of these appointments per resource per day."
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="offering_price_not_negative"),
            models.CheckConstraint(
                condition=~Q(kind="appointment")
                | Q(duration__gt=timedelta(0), slot_interval__gt=timedelta(0)),
                name="appointment_has_duration_and_interval",
                violation_error_message="An appointment needs a positive duration and slot interval.",
            ),
            models.CheckConstraint(
                condition=Q(buffer_before__gte=timedelta(0), buffer_after__gte=timedelta(0)),
                name="offering_buffers_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(sales_open_at__isnull=True)
                | Q(sales_close_at__isnull=True)
                | Q(sales_close_at__gt=F("sales_open_at")),
                name="offering_sales_close_after_open",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def reminder_offsets(self) -> list[int]:
        return sorted({int(h) for h in self.reminder_hours.split(",") if h.strip()}, reverse=True)

    def clean(self) -> None:
        errors = {}
        if self.kind == self.Kind.APPOINTMENT:
            if not self.duration or self.duration <= timedelta(0):
                errors["duration"] = "An appointment needs a duration, e.g. 0:45:00."
            if not self.slot_interval or self.slot_interval <= timedelta(0):
                errors["slot_interval"] = "An appointment needs a slot interval, e.g. 0:15:00."
        for name in ("buffer_before", "buffer_after", "min_notice"):
            if getattr(self, name) is not None and getattr(self, name) < timedelta(0):
                errors[name] = "This cannot be negative."
        if self.horizon is not None and self.horizon <= timedelta(0):
            errors["horizon"] = "Customers must be able to book at least some time ahead."
        if self.sales_open_at and self.sales_close_at and self.sales_close_at <= self.sales_open_at:
            errors["sales_close_at"] = "Sales must close after they open."
        if errors:
            raise ValidationError(errors)

    @property
    def is_appointment(self) -> bool:
        return self.kind == self.Kind.APPOINTMENT


class ResourceRequirement(models.Model):
    """An appointment needs `quantity` of these candidates, e.g. "one of Ann, Bob or Cat"."""

    offering = models.ForeignKey(Offering, on_delete=models.CASCADE, related_name="requirements")
    label = models.CharField(max_length=80, help_text="What customers choose, e.g. Stylist, Room.")
    candidates = models.ManyToManyField(Resource, related_name="+")
    quantity = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    customer_chooses = models.BooleanField(
        default=True, help_text="Customers may pick one; otherwise any available one is assigned."
    )

    class Meta:
        ordering = ["offering", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="requirement_quantity_positive")
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.label}"
