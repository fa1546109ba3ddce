"""How an event's places are divided and priced: zones, seats, ticket types and price tiers."""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from inventory.models.offerings import Offering


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
