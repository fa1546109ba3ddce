"""Dated occurrences and the rows that enforce capacity.

* `CapacityCounter`: `held + sold <= capacity` is a CHECK constraint; the booking engine locks the row
  (`inventory.locks.lock_session_counters`) before it moves either number.
* `Allocation`: time on a resource unit, with an exclusion constraint against overlaps while active.
* `SeatAllocation`: one active row per (session, seat).
"""

from datetime import timedelta

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeOperators
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from inventory.models.hours import Weekday
from inventory.models.offerings import Offering
from inventory.models.places import Resource, ResourceUnit
from inventory.models.seating import Seat, TicketType, Zone


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
