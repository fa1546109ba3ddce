"""Calendar connections of resources, and the bookings we put in those calendars.

Busy time read from a calendar is stored as inventory BusyBlocks (source "calendar:<connection id>"),
which the availability engine already subtracts; this app only keeps how to reach the calendar and
where each sync stopped.
"""

import json

from django.db import models
from django.db.models import Q

from booking.models import Booking
from core import crypto
from inventory.models import Resource


class CalendarConnection(models.Model):
    class Provider(models.TextChoices):
        GOOGLE = "google", "Google Calendar"
        MICROSOFT = "microsoft", "Outlook (Microsoft 365)"
        CALDAV = "caldav", "CalDAV (iCloud, Nextcloud, Fastmail …)"

    class Mode(models.TextChoices):
        READ_ONLY = "read_only", "Read busy time only"
        TWO_WAY = "two_way", "Two-way: busy time in, bookings out"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the grant"
        CONNECTED = "connected", "Connected"
        FAILING = "failing", "Provider unreachable (using the last busy time)"
        NEEDS_RECONNECT = "needs_reconnect", "Needs reconnecting"
        DISCONNECTED = "disconnected", "Disconnected"

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="calendar_connections")
    provider = models.CharField(max_length=12, choices=Provider.choices)
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.READ_ONLY)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    account = models.CharField(
        max_length=254, blank=True, help_text="The calendar account, as the provider names it."
    )
    calendar_id = models.CharField(
        max_length=500, blank=True, help_text="Which calendar of the account; empty: the main one."
    )
    notify_email = models.EmailField(blank=True, help_text="Told when the connection stops working.")
    secret = models.BinaryField(default=bytes, editable=False, help_text="Tokens or password, encrypted.")
    sync_token = models.TextField(blank=True, editable=False)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    channel_id = models.CharField(max_length=120, blank=True, editable=False)
    channel_token = models.CharField(max_length=120, blank=True, editable=False)
    channel_resource_id = models.CharField(max_length=300, blank=True, editable=False)
    channel_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["resource__name", "provider"]
        constraints = [
            # One live calendar per resource: two would each push the same booking.
            models.UniqueConstraint(
                fields=["resource"],
                condition=~Q(status="disconnected"),
                name="calendar_one_live_per_resource",
            )
        ]
        indexes = [models.Index(fields=["channel_id"], name="calendar_channel")]

    def __str__(self) -> str:
        return f"{self.resource.name}: {self.get_provider_display()} ({self.account or 'not connected'})"

    @property
    def source(self) -> str:
        """The BusyBlock.source of this connection's busy time."""
        return f"calendar:{self.pk}"

    @property
    def is_live(self) -> bool:
        return self.status in (self.Status.CONNECTED, self.Status.FAILING)

    def credentials(self) -> dict:
        return json.loads(crypto.decrypt(self.secret)) if self.secret else {}

    def set_credentials(self, credentials: dict) -> None:
        self.secret = crypto.encrypt(json.dumps(credentials).encode())


class CalendarEvent(models.Model):
    """A booking as an event in a connected calendar (two-way connections).

    `starts_at`/`ends_at` are the times we last wrote; a sync that finds other times means staff moved
    the event in their calendar.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "In the calendar"
        DELETED = "deleted", "Deleted by us"
        MOVED_OUTSIDE = "moved_outside", "Moved in the calendar"
        DELETED_OUTSIDE = "deleted_outside", "Deleted in the calendar"

    connection = models.ForeignKey(CalendarConnection, on_delete=models.CASCADE, related_name="events")
    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="calendar_events")
    our_id = models.CharField(max_length=120, help_text="The id we chose for the event.")
    external_id = models.CharField(
        max_length=500, blank=True, help_text="The provider's id, when it differs."
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    pushed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "booking"], name="calendar_event_one_per_booking"),
            models.UniqueConstraint(fields=["connection", "our_id"], name="calendar_event_our_id_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.booking} in {self.connection}"
