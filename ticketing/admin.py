"""Admin for ticketing: ticket rules on each event, check-in lists on each session, tickets on each booking.

Ticketing sits above booking, inventory and payments' admin extensions, so it extends whatever
admin class is registered for those models when it loads (INSTALLED_APPS order), never replacing
another app's additions. Scans and tickets are read-only here: they change through their services.
"""

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from booking.admin import StaffAction
from booking.models import Booking
from core.errors import ApplicationError
from inventory.models import Offering, Session
from ticketing.models import (
    CheckInList,
    DoorDevice,
    ResaleListing,
    Scan,
    Ticket,
    TicketPolicy,
    TicketTransfer,
)
from ticketing.selectors import checkin_counts
from ticketing.services import door_device_revoke, ticket_revoke


def _extend(model, inline):
    """Re-register *model* with its current admin class plus *inline*."""
    current = type(admin.site.get_model_admin(model))
    admin.site.unregister(model)
    extended = type(f"{current.__name__}WithTickets", (current,), {"inlines": [*current.inlines, inline]})
    admin.site.register(model, extended)


class TicketPolicyInline(admin.StackedInline):
    model = TicketPolicy
    extra = 0
    max_num = 1
    verbose_name_plural = "Ticket rules (none: free transfers until 24 hours before, no resale)"


class CheckInListInline(admin.TabularInline):
    model = CheckInList
    extra = 0
    fields = ("name", "ticket_types", "zones", "allow_reentry", "count_exits", "opens_before")
    verbose_name_plural = "Check-in lists (one is made automatically when tickets are issued)"


class TicketInline(admin.TabularInline):
    model = Ticket
    fk_name = "booking"
    extra = 0
    can_delete = False
    fields = (
        "code_link",
        "holder_name",
        "holder_email",
        "ticket_type",
        "zone",
        "seat",
        "status",
        "issued_at",
    )
    readonly_fields = fields
    ordering = ("-status", "id")

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="code")
    def code_link(self, obj):
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:ticketing_ticket_change", args=[obj.pk]), obj.code
        )


_extend(Offering, TicketPolicyInline)
_extend(Session, CheckInListInline)


class ReplacementForm(forms.Form):
    ticket = forms.ModelChoiceField(queryset=Ticket.objects.none(), label="Ticket to replace")
    reason = forms.CharField(max_length=150, label="Why", initial="lost or shared")

    def __init__(self, data=None, *, booking, now):
        super().__init__(data)
        self.fields["ticket"].queryset = Ticket.objects.filter(booking=booking, status=Ticket.Status.VALID)
        self.fields["ticket"].label_from_instance = lambda t: f"{t.code} · {t.holder_name}"


def _replace(booking, data, request, now) -> str:
    ticket = ticket_revoke(ticket=data["ticket"], now=now, reason=data["reason"], acting_user=request.user)
    return f"Ticket {ticket.code} revoked; its holder gets a new code by email."


REPLACEMENT = StaffAction(
    "replace-ticket",
    "Issue a replacement ticket…",
    "ticketing.change_ticket",
    ReplacementForm,
    _replace,
    lambda booking: Ticket.objects.filter(booking=booking, status=Ticket.Status.VALID).exists(),
    "The old code stops working at the door at once.",
)

_extend(Booking, TicketInline)
_booking_admin = type(admin.site.get_model_admin(Booking))
_booking_admin.staff_actions = [*_booking_admin.staff_actions, REPLACEMENT]
_booking_admin.search_fields = (*_booking_admin.search_fields, "tickets__code")


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ("code", "holder_name", "session", "ticket_type", "seat", "status", "issued_at")
    list_filter = ("status", "session__offering")
    search_fields = ("code", "holder_name", "holder_email", "booking__reference")
    list_select_related = ("session__offering", "ticket_type", "seat")
    readonly_fields = [f.name for f in Ticket._meta.fields if f.name not in ("payload", "access_key")]
    exclude = ("payload", "access_key")
    actions = ["revoke_and_reissue"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke the code and email a new one (e.g. a photo of it was shared)")
    def revoke_and_reissue(self, request, queryset):
        done = 0
        for ticket in queryset.filter(status=Ticket.Status.VALID):
            try:
                ticket_revoke(
                    ticket=ticket, now=timezone.now(), reason="revoked by staff", acting_user=request.user
                )
            except ApplicationError as error:
                self.message_user(request, f"{ticket.code}: {error.message}", messages.ERROR)
            else:
                done += 1
        self.message_user(request, f"{done} ticket(s) revoked; new codes are on their way to the holders.")


@admin.register(CheckInList)
class CheckInListAdmin(admin.ModelAdmin):
    list_display = ("session", "name", "allow_reentry", "count_exits", "admitted")
    list_filter = ("session__offering",)
    filter_horizontal = ("ticket_types", "zones")
    list_select_related = ("session__offering",)

    @admin.display(description="admitted / expected · conflicts")
    def admitted(self, obj):
        counts = checkin_counts(checkin_list=obj)
        return f"{counts['admitted']} / {counts['expected']} · {counts['conflicts']}"


@admin.register(Scan)
class ScanAdmin(admin.ModelAdmin):
    """Every scan at every door; "conflict" marks someone let in although another scan was first."""

    list_display = (
        "scanned_at",
        "checkin_list",
        "ticket",
        "result",
        "shown_result",
        "conflict",
        "door",
        "offline",
    )
    list_filter = ("conflict", "result", "offline", "direction", "checkin_list__session__offering")
    search_fields = ("ticket__code", "ticket__holder_name", "door", "raw")
    list_select_related = ("checkin_list__session__offering", "ticket")
    date_hierarchy = "scanned_at"
    readonly_fields = [f.name for f in Scan._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DoorDevice)
class DoorDeviceAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "created_at", "last_seen_at", "revoked_at")
    list_filter = ("revoked_at",)
    readonly_fields = ("name", "user", "created_at", "last_seen_at", "revoked_at")
    exclude = ("token_hash",)
    actions = ["switch_off"]

    def has_add_permission(self, request):
        return False  # a phone registers itself at /door/ when door staff sign in

    @admin.action(description="Switch off (a lost phone): it can no longer scan or sync")
    def switch_off(self, request, queryset):
        for device in queryset:
            door_device_revoke(device=device, now=timezone.now())
        self.message_user(request, f"{queryset.count()} device(s) switched off.")


@admin.register(ResaleListing)
class ResaleListingAdmin(admin.ModelAdmin):
    list_display = ("ticket", "session", "price", "status", "buyer_booking", "listed_at")
    list_filter = ("status", "session__offering")
    readonly_fields = [f.name for f in ResaleListing._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(TicketTransfer)
class TicketTransferAdmin(admin.ModelAdmin):
    list_display = ("ticket", "to_name", "to_email", "fee", "status", "created_at", "completed_at")
    list_filter = ("status",)
    readonly_fields = [f.name for f in TicketTransfer._meta.fields]

    def has_add_permission(self, request):
        return False
