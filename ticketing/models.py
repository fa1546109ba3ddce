"""Tickets with signed QR codes, the organiser's transfer and resale rules, check-in lists and scans.

Each class or event has its own Ed25519 key pair. A ticket's QR code carries a small payload signed
with the private key, so a door device holding only the public key can tell a real code from a
forged or altered one without the network. Cancelling, transferring or re-seating a ticket revokes
its code (the device learns revocations with the ticket list) and issues a new one.
"""

import secrets
from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from booking.models import Booking, BookingItem
from inventory.models import Offering, Seat, Session, TicketType, Zone

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_ticket_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))


def new_access_key() -> str:
    return secrets.token_urlsafe(18)


class SigningKey(models.Model):
    """The Ed25519 key pair of one class or event (the private half never leaves the server)."""

    offering = models.OneToOneField(Offering, on_delete=models.CASCADE, related_name="signing_key")
    private_key = models.BinaryField(help_text="Raw 32-byte Ed25519 private key, encrypted at rest.")
    public_key = models.BinaryField(help_text="Raw 32-byte Ed25519 public key, given to door devices.")
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Signing key of {self.offering}"


class Ticket(models.Model):
    class Status(models.TextChoices):
        VALID = "valid", "Valid"
        REVOKED = "revoked", "Revoked"

    booking_item = models.ForeignKey(BookingItem, on_delete=models.PROTECT, related_name="tickets")
    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="tickets")
    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="tickets")
    code = models.CharField(
        max_length=16, unique=True, default=new_ticket_code, help_text="Typed at the door."
    )
    access_key = models.CharField(
        max_length=32, unique=True, default=new_access_key, help_text="The holder's link to this ticket."
    )
    payload = models.CharField(max_length=200, unique=True, help_text="What the QR code says (signed).")
    holder_name = models.CharField(max_length=150)
    holder_email = models.EmailField(blank=True)
    ticket_type = models.ForeignKey(
        TicketType, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    zone = models.ForeignKey(Zone, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    seat = models.ForeignKey(Seat, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.VALID)
    issued_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=200, blank=True)
    replaced_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaces"
    )
    updated_at = models.DateTimeField(help_text="For door devices syncing what changed.")

    class Meta:
        ordering = ["session", "id"]
        indexes = [models.Index(fields=["session", "updated_at"], name="ticket_session_changes")]
        constraints = [
            models.UniqueConstraint(
                fields=["booking_item"],
                condition=Q(status="valid"),
                name="ticket_one_valid_per_place",
                violation_error_message="A place has at most one valid ticket.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} · {self.holder_name} ({self.get_status_display()})"


class TicketPolicy(models.Model):
    """What an organiser allows ticket holders to do with their tickets."""

    offering = models.OneToOneField(Offering, on_delete=models.CASCADE, related_name="ticket_policy")
    transfers_allowed = models.BooleanField(default=True)
    transfer_until = models.DurationField(
        default=timedelta(hours=24), help_text="Transfers close this long before the start."
    )
    name_change_allowed = models.BooleanField(
        default=True, help_text="A transferred ticket carries the new name."
    )
    transfer_fee = models.DecimalField(
        max_digits=8, decimal_places=2, default=0, validators=[MinValueValidator(0)]
    )
    resale_allowed = models.BooleanField(default=False)
    resale_cap_percent = models.PositiveSmallIntegerField(
        default=100,
        validators=[MinValueValidator(1), MaxValueValidator(300)],
        help_text="Resale price at most this percentage of the face value.",
    )

    class Meta:
        verbose_name_plural = "ticket policies"

    def __str__(self) -> str:
        return f"Ticket rules of {self.offering}"


class TicketTransfer(models.Model):
    """A ticket handed to someone else (or renamed); with a fee, it waits for the fee to be paid."""

    class Status(models.TextChoices):
        AWAITING_FEE = "awaiting_fee", "Waiting for the fee"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="transfers")
    to_name = models.CharField(max_length=150)
    to_email = models.EmailField()
    fee = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    charge_reference = models.CharField(max_length=80, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices)
    new_ticket = models.OneToOneField(
        Ticket, null=True, blank=True, on_delete=models.PROTECT, related_name="transferred_from"
    )
    created_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["ticket"], condition=Q(status="awaiting_fee"), name="transfer_one_pending_per_ticket"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ticket.code} → {self.to_name} ({self.get_status_display()})"


class ResaleListing(models.Model):
    """A ticket offered for resale through the platform, at no more than the organiser's cap."""

    class Status(models.TextChoices):
        LISTED = "listed", "For sale"
        RESERVED = "reserved", "Being bought"
        SOLD = "sold", "Sold"
        WITHDRAWN = "withdrawn", "Withdrawn"

    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="listings")
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="resale_listings")
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(0)])
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.LISTED)
    buyer_booking = models.ForeignKey(
        Booking, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    listed_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["price", "listed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["ticket"],
                condition=Q(status__in=["listed", "reserved"]),
                name="resale_one_open_per_ticket",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ticket.code} for {self.price} ({self.get_status_display()})"


class CheckInList(models.Model):
    """Who a door admits to a session: which ticket types and zones count, and how re-entry works."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="checkin_lists")
    name = models.CharField(max_length=80, default="All tickets")
    ticket_types = models.ManyToManyField(
        TicketType, blank=True, related_name="+", help_text="Empty: every type."
    )
    zones = models.ManyToManyField(Zone, blank=True, related_name="+", help_text="Empty: every zone.")
    allow_reentry = models.BooleanField(default=False, help_text="Scanned out, a ticket may come back in.")
    count_exits = models.BooleanField(default=False, help_text="Doors scan people out as well as in.")
    opens_before = models.DurationField(
        default=timedelta(hours=2), help_text="Tickets are valid from this long before the start."
    )

    class Meta:
        ordering = ["session", "name"]
        permissions = [("scan_tickets", "Can check tickets in at the door")]

    def __str__(self) -> str:
        return f"{self.session}: {self.name}"


class Scan(models.Model):
    """One scan at a door, online or synced later from an offline device. The id is made by the device."""

    class Result(models.TextChoices):
        VALID = "valid", "Valid"
        EXITED = "exited", "Left"
        ALREADY_IN = "already_in", "Already checked in"
        REVOKED = "revoked", "Revoked"
        WRONG_SESSION = "wrong_session", "Wrong session"
        NOT_ON_LIST = "not_on_list", "Not valid at this entrance"
        UNPAID = "unpaid", "Not paid"
        NOT_YET_VALID = "not_yet_valid", "Not valid yet"
        NOT_INSIDE = "not_inside", "Was not checked in"
        INVALID = "invalid", "Not a valid ticket"

    class Direction(models.TextChoices):
        ENTRY = "entry", "In"
        EXIT = "exit", "Out"

    id = models.UUIDField(primary_key=True)
    checkin_list = models.ForeignKey(CheckInList, on_delete=models.CASCADE, related_name="scans")
    ticket = models.ForeignKey(Ticket, null=True, blank=True, on_delete=models.SET_NULL, related_name="scans")
    raw = models.CharField(max_length=300, help_text="What was scanned or typed.")
    direction = models.CharField(max_length=5, choices=Direction.choices, default=Direction.ENTRY)
    result = models.CharField(max_length=16, choices=Result.choices)
    shown_result = models.CharField(max_length=16, blank=True, help_text="What the door saw at the time.")
    offline = models.BooleanField(default=False, help_text="Judged by the device alone, synced later.")
    override = models.BooleanField(default=False, help_text="Staff let them in although unpaid.")
    scanned_at = models.DateTimeField(help_text="When the device scanned it (its own clock).")
    received_at = models.DateTimeField()
    device = models.ForeignKey(
        "DoorDevice", null=True, blank=True, on_delete=models.SET_NULL, related_name="scans"
    )
    door = models.CharField(max_length=80, blank=True)
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    conflict = models.BooleanField(default=False, help_text="Let in, although another scan was first.")
    conflict_with = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["scanned_at"]
        indexes = [
            models.Index(fields=["ticket", "scanned_at"], name="scan_ticket_time"),
            # The door counts conflicts after every scan: a list's few flagged scans, not all its scans.
            models.Index(
                fields=["checkin_list", "-scanned_at"], condition=Q(conflict=True), name="scan_conflicts"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.raw[:12]} {self.get_result_display()} at {self.door}"


class CheckInState(models.Model):
    """Where a ticket stands on one check-in list, as the scans (in time order) leave it."""

    checkin_list = models.ForeignKey(CheckInList, on_delete=models.CASCADE, related_name="states")
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="checkin_states")
    inside = models.BooleanField(default=False)
    admitted_scan = models.ForeignKey(
        Scan, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_entry_at = models.DateTimeField(null=True, blank=True)
    last_entry_door = models.CharField(max_length=80, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["checkin_list", "ticket"], name="checkin_state_once")]
        indexes = [models.Index(fields=["checkin_list", "updated_at"], name="checkin_state_changes")]

    def __str__(self) -> str:
        return f"{self.ticket} on {self.checkin_list}: {'inside' if self.inside else 'outside'}"


class DoorDevice(models.Model):
    """A phone at a door, signed in by a staff member; its token lets it sync while the session sleeps."""

    name = models.CharField(max_length=80, help_text="e.g. North door, phone 2")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="door_devices")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"
