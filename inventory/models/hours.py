"""When a resource can be booked: weekly working hours, dated overrides, blackouts and busy blocks.

All are wall-clock rules in the location's IANA zone; the availability engine turns them into UTC
instants. Exclusion constraints keep one resource's weekly hours from overlapping.
"""

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import RangeOperators
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from inventory.models.fields import WallClockRange
from inventory.models.places import Location, Resource


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
