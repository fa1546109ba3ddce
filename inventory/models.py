"""What a business sells and what it sells it with.

One layer serves appointments, classes and ticketed events:

* **Time on a resource** (a stylist, a room, one of four massage tables) is an `Allocation` of a
  `ResourceUnit` over a `tstzrange` that includes the buffers. An exclusion constraint makes two
  active allocations of one unit overlap impossible, whoever wrote them. A resource with a pool count
  has that many units.
* **Counted places** (a class session, a zone of a concert, a ticket type with a limit) are
  `CapacityCounter` rows with `capacity`, `held` and `sold` and a CHECK that `held + sold` never
  exceeds `capacity`.
* **Seats** are `SeatAllocation` rows, unique per (session, seat) while active.

Schedules are wall-clock rules in the location's IANA zone; instants are stored in UTC and periods
are half-open `[start, end)`.
"""

import zoneinfo
from datetime import timedelta
from decimal import Decimal

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeOperators
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Func, Q

CURRENCY_VALIDATOR = RegexValidator(r"^[A-Z]{3}$", "Use a three-letter ISO 4217 currency code, e.g. EUR.")
REMINDER_HOURS_VALIDATOR = RegexValidator(
    r"^(\d{1,4}(,\d{1,4})*)?$", "List whole hours before the start separated by commas, e.g. 24,2."
)


def validate_time_zone(value: str) -> None:
    if value not in _known_time_zones():
        raise ValidationError(
            "%(value)s is not a known time zone; use an IANA name such as Europe/London or Asia/Kolkata.",
            params={"value": value},
            code="unknown_time_zone",
        )


def _known_time_zones() -> set[str]:
    global _TIME_ZONES
    if _TIME_ZONES is None:
        _TIME_ZONES = zoneinfo.available_timezones()
    return _TIME_ZONES


_TIME_ZONES: set[str] | None = None


class WallClockRange(Func):
    """`tsrange(<a fixed date> + start_time, <same date> + end_time)`: times of day as a range.

    PostgreSQL has no range type over `time`; pinning both ends to one date gives an immutable
    expression the exclusion constraint on working hours can index.
    """

    template = "tsrange(DATE '2000-01-03' + %(expressions)s, '[)')"
    arg_joiner = ", DATE '2000-01-03' + "
    output_field = DateTimeRangeField()


class TstzRange(Func):
    function = "tstzrange"
    output_field = DateTimeRangeField()

    def __init__(self, start, end, **extra):
        super().__init__(start, end, models.Value("[)"), **extra)


# --- where and with what ------------------------------------------------------------------------


class Location(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(unique=True)
    address_line1 = models.CharField("address", max_length=200)
    address_line2 = models.CharField("address (line 2)", max_length=200, blank=True)
    city = models.CharField(max_length=100)
    postcode = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, help_text="ISO 3166 code, e.g. GB")
    time_zone = models.CharField(
        max_length=64, validators=[validate_time_zone], help_text="IANA time zone, e.g. Europe/London"
    )
    phone = models.CharField(max_length=40, blank=True)
    directions = models.TextField(blank=True, help_text="How to find the entrance, parking, accessibility.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @property
    def address(self) -> str:
        parts = [self.address_line1, self.address_line2, f"{self.postcode} {self.city}".strip(), self.country]
        return ", ".join(p for p in parts if p)


class Resource(models.Model):
    """Someone or something whose time is booked: staff, a room, equipment.

    `count` > 1 makes a pool of identical units (4 massage tables); each unit is booked on its own.
    """

    class Kind(models.TextChoices):
        STAFF = "staff", "Staff"
        ROOM = "room", "Room"
        EQUIPMENT = "equipment", "Equipment"

    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="resources")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    count = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="How many identical units (a pool), usually 1.",
    )
    email = models.EmailField(blank=True, help_text="Staff: where notices about their bookings go.")
    bio = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["location", "kind", "name"]
        constraints = [models.CheckConstraint(condition=Q(count__gte=1), name="resource_count_positive")]

    def __str__(self) -> str:
        return self.name if self.count == 1 else f"{self.name} (×{self.count})"


class ResourceUnit(models.Model):
    """One bookable unit of a resource; allocations are made per unit."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="units")
    number = models.PositiveIntegerField()
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["resource", "number"]
        constraints = [models.UniqueConstraint(fields=["resource", "number"], name="unit_number_unique")]

    def __str__(self) -> str:
        return f"{self.resource.name} #{self.number}"


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


def _check_time_order(start, end, *, what: str) -> None:
    if start is not None and end is not None and end <= start:
        raise ValidationError({"end_time": f"{what} must end after it starts ({start:%H:%M} – {end:%H:%M})."})


class WorkingHours(models.Model):
    """A weekly wall-clock period in the resource's location zone, e.g. Tuesday 09:00–17:30."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="working_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start_time = models.TimeField()
    end_time = models.TimeField()

    class Meta:
        verbose_name_plural = "working hours"
        ordering = ["resource", "weekday", "start_time"]
        constraints = [
            models.CheckConstraint(condition=Q(end_time__gt=F("start_time")), name="hours_end_after_start"),
            ExclusionConstraint(
                name="hours_no_overlap",
                expressions=[
                    ("resource", RangeOperators.EQUAL),
                    ("weekday", RangeOperators.EQUAL),
                    (WallClockRange("start_time", "end_time"), RangeOperators.OVERLAPS),
                ],
                violation_error_message="These working hours overlap other hours of the same day.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start_time:%H:%M}–{self.end_time:%H:%M}"

    def clean(self) -> None:
        _check_time_order(self.start_time, self.end_time, what="Working hours")


class DateOverride(models.Model):
    """Hours for one date that replace the weekly ones: a closed day, or different/extra opening.

    Any override on a date replaces that date's weekly hours entirely; several "open" rows give split
    hours. A date is either closed or open, never both.
    """

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="date_overrides")
    date = models.DateField()
    is_closed = models.BooleanField("closed all day", default=False)
    start_time = models.TimeField(null=True, blank=True)
    end_time = models.TimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["resource", "date", "start_time"]
        constraints = [
            models.CheckConstraint(
                condition=Q(is_closed=True, start_time__isnull=True, end_time__isnull=True)
                | Q(is_closed=False, start_time__isnull=False, end_time__gt=F("start_time")),
                name="override_closed_or_valid_hours",
                violation_error_message="A closed day has no hours; an open day starts before it ends.",
            ),
            ExclusionConstraint(
                name="override_no_overlap",
                expressions=[
                    ("resource", RangeOperators.EQUAL),
                    ("date", RangeOperators.EQUAL),
                    (WallClockRange("start_time", "end_time"), RangeOperators.OVERLAPS),
                ],
                condition=Q(is_closed=False),
                violation_error_message="These hours overlap other hours on the same date.",
            ),
        ]

    def __str__(self) -> str:
        if self.is_closed:
            return f"{self.date}: closed"
        return f"{self.date}: {self.start_time:%H:%M}–{self.end_time:%H:%M}"

    def clean(self) -> None:
        if self.is_closed and (self.start_time or self.end_time):
            raise ValidationError("A closed day has no hours: clear the times or untick 'closed all day'.")
        if not self.is_closed:
            if self.start_time is None or self.end_time is None:
                raise ValidationError("Give the opening hours for this date, or tick 'closed all day'.")
            _check_time_order(self.start_time, self.end_time, what="The hours")


class Blackout(models.Model):
    """A period when a whole location or one resource cannot be booked (holiday, maintenance)."""

    location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.CASCADE, related_name="blackouts"
    )
    resource = models.ForeignKey(
        Resource, null=True, blank=True, on_delete=models.CASCADE, related_name="blackouts"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200)

    class Meta:
        ordering = ["starts_at"]
        indexes = [models.Index(fields=["starts_at", "ends_at"], name="blackout_period")]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="blackout_end_after_start"),
            models.CheckConstraint(
                condition=Q(location__isnull=True, resource__isnull=False)
                | Q(location__isnull=False, resource__isnull=True),
                name="blackout_location_xor_resource",
                violation_error_message="A blackout applies to a location or to a resource, not both.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reason} ({self.location or self.resource})"

    def clean(self) -> None:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The blackout must end after it starts."})
        if (self.location_id is None) == (self.resource_id is None):
            raise ValidationError("Choose either a location or a resource for the blackout.")


class BusyBlock(models.Model):
    """Time taken on a resource by something outside this system (written by calendar sync)."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="busy_blocks")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    source = models.CharField(max_length=60, help_text="Where it came from, e.g. 'manual' or 'google:12'.")
    external_id = models.CharField(max_length=255, blank=True)
    summary = models.CharField(max_length=200, blank=True, help_text="Shown to staff only.")
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["starts_at"]
        indexes = [models.Index(fields=["resource", "starts_at", "ends_at"], name="busy_resource_period")]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="busy_end_after_start"),
            models.UniqueConstraint(
                fields=["resource", "source", "external_id"],
                condition=~Q(external_id=""),
                name="busy_one_per_external_event",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.resource}: busy {self.starts_at:%Y-%m-%d %H:%M}"


# --- what is sold -------------------------------------------------------------------------------


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


class Zone(models.Model):
    """Part of an event's venue with its own capacity, e.g. Stalls (seated) or Standing."""

    offering = models.ForeignKey(Offering, on_delete=models.CASCADE, related_name="zones")
    name = models.CharField(max_length=80)
    capacity = models.PositiveIntegerField(
        help_text="Places per session (seated zones: the number of seats)."
    )
    is_seated = models.BooleanField(default=False)
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["offering", "sort_order", "name"]
        constraints = [models.UniqueConstraint(fields=["offering", "name"], name="zone_name_unique")]

    def __str__(self) -> str:
        return f"{self.offering}: {self.name}"


class Seat(models.Model):
    zone = models.ForeignKey(Zone, on_delete=models.CASCADE, related_name="seats")
    row = models.CharField(max_length=8)
    number = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=20, help_text="What the ticket says, e.g. C12.")

    class Meta:
        ordering = ["zone", "row", "number"]
        constraints = [
            models.UniqueConstraint(fields=["zone", "row", "number"], name="seat_position_unique"),
            models.UniqueConstraint(fields=["zone", "label"], name="seat_label_unique"),
        ]

    def __str__(self) -> str:
        return self.label


class TicketType(models.Model):
    """A kind of ticket for an event (Adult, Child, VIP), valid in some or all zones."""

    offering = models.ForeignKey(Offering, on_delete=models.CASCADE, related_name="ticket_types")
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=200, blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))])
    zones = models.ManyToManyField(
        Zone, blank=True, related_name="ticket_types", help_text="Empty: every zone."
    )
    limit_per_session = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many of this type per session (e.g. 20 child tickets)."
    )
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["offering", "sort_order", "name"]
        constraints = [
            models.UniqueConstraint(fields=["offering", "name"], name="ticket_type_name_unique"),
            models.CheckConstraint(condition=Q(price__gte=0), name="ticket_price_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name


class PriceTier(models.Model):
    """A price for a ticket type during a window, e.g. Early bird until 1 March."""

    ticket_type = models.ForeignKey(TicketType, on_delete=models.CASCADE, related_name="price_tiers")
    name = models.CharField(max_length=80)
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))])
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["ticket_type", "valid_from"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="tier_price_not_negative"),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True)
                | Q(valid_until__isnull=True)
                | Q(valid_until__gt=F("valid_from")),
                name="tier_until_after_from",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.price}"

    def clean(self) -> None:
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValidationError({"valid_until": "The price must end after it starts."})


class SessionSeries(models.Model):
    """A weekly rule that creates class sessions, e.g. every Tuesday 18:30 for 60 minutes."""

    offering = models.ForeignKey(Offering, on_delete=models.CASCADE, related_name="series")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start_time = models.TimeField()
    duration = models.DurationField()
    capacity = models.PositiveIntegerField()
    starts_on = models.DateField()
    ends_on = models.DateField()
    resources = models.ManyToManyField(Resource, blank=True, related_name="+", help_text="Instructor, room …")

    class Meta:
        verbose_name_plural = "session series"
        constraints = [
            models.CheckConstraint(condition=Q(ends_on__gte=F("starts_on")), name="series_ends_after_start"),
            models.CheckConstraint(condition=Q(duration__gt=timedelta(0)), name="series_duration_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.offering} every {self.get_weekday_display()} {self.start_time:%H:%M}"

    def clean(self) -> None:
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            raise ValidationError({"ends_on": "The series must end on or after its first date."})
        if self.duration is not None and self.duration <= timedelta(0):
            raise ValidationError({"duration": "A session needs a positive duration."})


class Session(models.Model):
    """One occurrence of a class or an event, with its own counted capacity."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        CANCELLED = "cancelled", "Cancelled"

    offering = models.ForeignKey(Offering, on_delete=models.CASCADE, related_name="sessions")
    series = models.ForeignKey(
        SessionSeries, null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SCHEDULED)
    sales_open_at = models.DateTimeField(null=True, blank=True, help_text="Empty: as the offering.")
    sales_close_at = models.DateTimeField(null=True, blank=True, help_text="Empty: as the offering.")
    resources = models.ManyToManyField(Resource, blank=True, related_name="sessions")

    class Meta:
        ordering = ["starts_at"]
        indexes = [models.Index(fields=["offering", "starts_at"], name="session_offering_start")]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="session_end_after_start"),
            models.UniqueConstraint(
                fields=["series", "starts_at"],
                condition=Q(series__isnull=False),
                name="series_one_session_per_start",
            ),
        ]

    def __str__(self) -> str:
        local = self.starts_at.astimezone(self.offering.location.tz)
        return f"{self.offering} {local:%a %d %b %Y %H:%M %Z}"


class CapacityCounter(models.Model):
    """Places of a session: in total, in one zone, or of one ticket type.

    The CHECK constraint is the backstop that makes even a buggy code path fail rather than oversell.
    """

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="counters")
    zone = models.ForeignKey(Zone, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    ticket_type = models.ForeignKey(
        TicketType, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    capacity = models.IntegerField()
    held = models.IntegerField(default=0)
    sold = models.IntegerField(default=0)

    class Meta:
        ordering = ["session", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(held__gte=0, sold__gte=0, capacity__gte=F("held") + F("sold")),
                name="counter_within_capacity",
                violation_error_message="Capacity cannot be lower than the places already held or sold.",
            ),
            models.CheckConstraint(condition=Q(capacity__gte=0), name="counter_capacity_not_negative"),
            models.CheckConstraint(
                condition=Q(zone__isnull=True) | Q(ticket_type__isnull=True),
                name="counter_zone_or_ticket_type",
            ),
            models.UniqueConstraint(
                fields=["session", "zone", "ticket_type"], nulls_distinct=False, name="counter_one_per_scope"
            ),
        ]

    def __str__(self) -> str:
        scope = (
            self.zone.name if self.zone_id else (self.ticket_type.name if self.ticket_type_id else "total")
        )
        return f"{scope}: {self.sold} sold, {self.held} held of {self.capacity}"

    @property
    def remaining(self) -> int:
        return self.capacity - self.held - self.sold


class Allocation(models.Model):
    """Time taken on one resource unit, buffers included, by a booking item or a session.

    `holder` is an opaque reference ("booking_item:42", "session:7"): inventory never knows bookings.
    """

    unit = models.ForeignKey(ResourceUnit, on_delete=models.PROTECT, related_name="allocations")
    resource = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="allocations")
    offering = models.ForeignKey(Offering, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    span = DateTimeRangeField(help_text="The whole time taken, buffers included, [start, end).")
    starts_at = models.DateTimeField(help_text="The appointment itself, without buffers.")
    ends_at = models.DateTimeField()
    holder = models.CharField(max_length=64)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["holder"], name="allocation_holder"),
            models.Index(fields=["resource", "starts_at"], name="allocation_resource_start"),
        ]
        constraints = [
            ExclusionConstraint(
                name="allocation_no_double_booking",
                expressions=[("unit", RangeOperators.EQUAL), ("span", RangeOperators.OVERLAPS)],
                condition=Q(is_active=True),
                violation_error_message="This time is already taken on this resource.",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="allocation_end_after_start"
            ),
            models.CheckConstraint(
                condition=Q(span__startswith__lte=F("starts_at"), span__endswith__gte=F("ends_at")),
                name="allocation_span_covers_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.unit} {self.starts_at:%Y-%m-%d %H:%M} ({self.holder})"


class SeatAllocation(models.Model):
    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="seat_allocations")
    seat = models.ForeignKey(Seat, on_delete=models.PROTECT, related_name="allocations")
    holder = models.CharField(max_length=64)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["holder"], name="seat_allocation_holder")]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "seat"],
                condition=Q(is_active=True),
                name="seat_sold_once_per_session",
                violation_error_message="This seat is already taken for this session.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.seat} @ {self.session} ({self.holder})"
