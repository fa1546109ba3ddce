"""Validators and database expressions the inventory models share.

`validate_time_zone` and `WallClockRange` are named by path in migrations; `inventory.models` re-exports
them so those paths keep resolving.
"""

import zoneinfo

from django.contrib.postgres.fields import DateTimeRangeField
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Func

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
