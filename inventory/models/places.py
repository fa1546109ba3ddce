"""Where things happen and what they happen with: locations, resources and the units a pool counts.

A resource with a pool count of four has four `ResourceUnit` rows; time on a unit is an `Allocation`
(see `inventory.models.sessions`).
"""

import zoneinfo

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from inventory.models.fields import validate_time_zone


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
