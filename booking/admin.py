"""Django admin for bookings: find any booking, read its whole history, and act on it.

Every button on a booking's page is a *staff action*: a small form, a permission that is checked on
the server, and one service call, which writes the timeline. Apps above booking (payments,
ticketing) add their own actions to the same list when they extend this admin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import CharField, Exists, F, OuterRef, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from booking.models import Booking, BookingItem, BookingStatus, Customer, WaitlistEntry
from booking.services import (
    booking_attendees_update,
    booking_attention_resolve,
    booking_cancel,
    booking_confirmation_resend,
    booking_mark_no_show,
    booking_reschedule,
    customer_details_correct,
    reschedule_options,
)
from core.audit.models import TimelineEntry
from core.errors import ApplicationError
from core.times import venue_time
from inventory.models import Allocation, Location, Resource, Session

# --- staff actions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffAction:
    """One thing staff can do to a booking from its admin page."""

    slug: str
    label: str
    permission: str
    form: Callable[..., forms.Form]  # form(data, booking=..., now=...)
    run: Callable[..., str]  # run(booking, data, request, now) -> message; raises ApplicationError
    available: Callable[[Booking], bool] = lambda booking: True
    help: str = ""


class ConfirmForm(forms.Form):
    """Nothing to fill in: the action's page is the "are you sure" step."""

    def __init__(self, data=None, *, booking, now):
        super().__init__(data)


class CancelForm(forms.Form):
    refund = forms.BooleanField(
        required=False,
        initial=True,
        label="Refund under the cancellation policy",
        help_text="Untick to cancel without giving money back.",
    )
    reason = forms.CharField(max_length=200, label="Why (kept on the timeline)")

    def __init__(self, data=None, *, booking, now):
        super().__init__(data)


class RescheduleForm(forms.Form):
    to = forms.ChoiceField(label="Move to")

    def __init__(self, data=None, *, booking, now):
        super().__init__(data)
        self.options = {}
        zone = booking.offering.location.time_zone
        for option in reschedule_options(booking=booking, now=now):
            session_id = getattr(option, "session_id", None)  # a class or event date, else a free time
            starts = option.starts_at
            key = f"session:{session_id}" if session_id else f"start:{starts.isoformat()}"
            self.options[key] = (session_id, starts)
            self.fields["to"].choices = [*self.fields["to"].choices, (key, venue_time(starts, zone, "short"))]
        if not self.options:
            self.fields["to"].help_text = "Nothing free in the next two weeks."


class ResolveForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="What was done")

    def __init__(self, data=None, *, booking, now):
        super().__init__(data)


class CustomerForm(forms.Form):
    name = forms.CharField(max_length=150)
    email = forms.EmailField()
    phone = forms.CharField(max_length=40, required=False)

    def __init__(self, data=None, *, booking, now):
        customer = booking.customer
        super().__init__(
            data, initial={"name": customer.name, "email": customer.email, "phone": customer.phone}
        )
        self.fields["attendees"] = forms.CharField(required=False, widget=forms.HiddenInput)
        self.items = list(booking.items.order_by("pk"))
        for item in self.items:
            self.fields[f"attendee_{item.pk}"] = forms.CharField(
                max_length=150, required=False, initial=item.attendee_name, label=f"Place {item.pk}: name"
            )


def _cancel(booking, data, request, now) -> str:
    booking, quote = booking_cancel(
        booking=booking,
        now=now,
        by_customer=False,
        refund=data["refund"],
        acting_user=request.user,
        reason=data["reason"],
    )
    refund = f" {quote.amount} {booking.currency} goes back to the customer." if data["refund"] else ""
    return f"Cancelled.{refund}"


def _reschedule(booking, data, request, now) -> str:
    session_id, starts = data["_form"].options[data["to"]]
    session = Session.objects.get(pk=session_id) if session_id else None
    booking_reschedule(
        booking=booking,
        now=now,
        by_customer=False,
        new_session=session,
        new_starts_at=None if session else starts,
        acting_user=request.user,
    )
    return "Moved; the customer is told by email with a new invite."


def _resend(booking, data, request, now) -> str:
    booking_confirmation_resend(booking=booking, now=now, acting_user=request.user)
    return f"The confirmation goes to {booking.customer.email} again."


def _no_show(booking, data, request, now) -> str:
    booking_mark_no_show(booking=booking, now=now, acting_user=request.user)
    return "Marked as a no-show."


def _resolve(booking, data, request, now) -> str:
    booking_attention_resolve(booking=booking, now=now, note=data["note"], acting_user=request.user)
    return "Resolved."


def _correct(booking, data, request, now) -> str:
    customer_details_correct(
        booking=booking,
        name=data["name"],
        email=data["email"],
        phone=data["phone"],
        now=now,
        acting_user=request.user,
    )
    names = {
        item.pk: data[f"attendee_{item.pk}"].strip()
        for item in data["_form"].items
        if data[f"attendee_{item.pk}"].strip() and data[f"attendee_{item.pk}"].strip() != item.attendee_name
    }
    if names:
        booking_attendees_update(
            booking=booking, names=names, now=now, by_customer=False, acting_user=request.user
        )
    return "Details corrected; the old values are on the timeline."


def _is(*statuses):
    return lambda booking: booking.status in statuses


BOOKING_ACTIONS = [
    StaffAction(
        "cancel",
        "Cancel…",
        "booking.change_booking",
        CancelForm,
        _cancel,
        _is(
            BookingStatus.CONFIRMED,
            BookingStatus.HELD,
            BookingStatus.AWAITING_PAYMENT,
            BookingStatus.PAYMENT_FAILED,
        ),
        "Frees the places; the refund follows the policy unless you untick it.",
    ),
    StaffAction(
        "reschedule",
        "Move to another time…",
        "booking.change_booking",
        RescheduleForm,
        _reschedule,
        _is(BookingStatus.CONFIRMED),
    ),
    StaffAction(
        "resend",
        "Resend confirmation and invite",
        "booking.change_booking",
        ConfirmForm,
        _resend,
        _is(BookingStatus.CONFIRMED),
    ),
    StaffAction(
        "no-show",
        "Mark as no-show",
        "booking.change_booking",
        ConfirmForm,
        _no_show,
        _is(BookingStatus.CONFIRMED),
    ),
    StaffAction("correct", "Correct details…", "booking.change_customer", CustomerForm, _correct),
    StaffAction(
        "resolve",
        "Resolve attention…",
        "booking.change_booking",
        ResolveForm,
        _resolve,
        lambda booking: booking.needs_attention,
    ),
]


# --- list filters ------------------------------------------------------------------------------------


class PaymentStateFilter(admin.SimpleListFilter):
    title = "payment"
    parameter_name = "paid"

    def lookups(self, request, model_admin):
        return [
            ("unpaid", "Nothing paid"),
            ("part", "Partly paid (balance due)"),
            ("paid", "Paid in full"),
            ("refunded", "Money refunded"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "unpaid":
            return queryset.filter(amount_paid=0, total_amount__gt=0)
        if value == "part":
            return queryset.filter(amount_paid__gt=0, amount_paid__lt=F("total_amount"))
        if value == "paid":
            return queryset.filter(amount_paid__gte=F("total_amount"), amount_refunded=0)
        if value == "refunded":
            return queryset.filter(amount_refunded__gt=0)
        return queryset


class LocationFilter(admin.SimpleListFilter):
    title = "location"
    parameter_name = "location"

    def lookups(self, request, model_admin):
        return [(loc.pk, loc.name) for loc in Location.objects.order_by("name")]

    def queryset(self, request, queryset):
        return queryset.filter(offering__location_id=self.value()) if self.value() else queryset


class ResourceFilter(admin.SimpleListFilter):
    """Who or what the appointment took (its allocations), e.g. every booking with one stylist."""

    title = "resource"
    parameter_name = "resource"

    def lookups(self, request, model_admin):
        return [(r.pk, r.name) for r in Resource.objects.filter(is_active=True).order_by("name")]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        holders = (
            BookingItem.objects.filter(booking_id=OuterRef(OuterRef("pk")))
            .annotate(holder=Concat(Value("booking_item:"), Cast("pk", CharField())))
            .values("holder")
        )
        taken = Allocation.objects.filter(resource_id=self.value(), holder__in=Subquery(holders))
        return queryset.filter(Exists(taken))


# --- the admin ---------------------------------------------------------------------------------------


class ItemInline(admin.TabularInline):
    model = BookingItem
    extra = 0
    fields = ("attendee_name", "attendee_email", "ticket_type", "zone", "seat", "price", "price_name")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # names are corrected with "Correct details…", which keeps the old ones


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    list_display = (
        "reference",
        "customer",
        "offering",
        "starts",
        "status",
        "total_amount",
        "needs_attention",
    )
    list_filter = (
        "status",
        PaymentStateFilter,
        "needs_attention",
        ("starts_at", admin.DateFieldListFilter),
        "offering__kind",
        LocationFilter,
        ResourceFilter,
        "offering",
    )
    search_fields = (
        "reference",
        "customer__name",
        "customer__email",
        "customer__phone",
        "items__attendee_name",
    )
    date_hierarchy = "starts_at"
    list_select_related = ("customer", "offering__location")
    list_per_page = 50
    inlines = [ItemInline]
    readonly_fields = [*[f.name for f in Booking._meta.fields if f.name != "notes"], "timeline"]
    staff_actions: list[StaffAction] = BOOKING_ACTIONS

    def get_fields(self, request, obj=None):
        own = [f.name for f in Booking._meta.fields if f.name != "id"]
        extra = [
            name for name in self.get_readonly_fields(request, obj) if name not in own and name != "timeline"
        ]
        return [*own, *extra, "timeline"]

    def get_search_results(self, request, queryset, search_term):
        queryset, duplicates = super().get_search_results(request, queryset, search_term)
        return queryset, True if search_term else duplicates

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    # --- history ---

    @admin.display(description="Starts", ordering="starts_at")
    def starts(self, obj: Booking) -> str:
        """In the venue's zone, named: "Sun 31 Oct, 01:00 GMT (the second 01:00, UTC+00:00)"."""
        return venue_time(obj.starts_at, obj.offering.location.time_zone, "short")

    @admin.display(description="Timeline")
    def timeline(self, obj):
        if not obj.pk:
            return "—"
        entries = TimelineEntry.objects.filter(
            subject_type=ContentType.objects.get_for_model(Booking), subject_id=str(obj.pk)
        ).order_by("created_at", "id")
        rows = [
            (
                timezone.localtime(entry.created_at).strftime("%d %b %Y %H:%M:%S %Z"),
                entry.action,
                entry.actor,
                _data_text(entry.data),
            )
            for entry in entries
        ]
        table = format_html_join(
            "", "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>", rows
        )
        head = mark_safe("<tr><th>When</th><th>What</th><th>Who</th><th>Details</th></tr>")
        return format_html('<table class="timeline">{}{}</table>', head, table)

    # --- actions ---

    def change_view(self, request, object_id, form_url="", extra_context=None):
        booking = self.get_object(request, object_id)
        actions = [
            (reverse("admin:booking_act", args=[booking.pk, action.slug]), action.label, action.help)
            for action in (self.staff_actions if booking else [])
            if action.available(booking) and request.user.has_perm(action.permission)
        ]
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "staff_actions": actions}
        )

    def get_urls(self):
        return [
            path(
                "<int:booking_id>/act/<slug:slug>/",
                self.admin_site.admin_view(self.action_view),
                name="booking_act",
            ),
            *super().get_urls(),
        ]

    def action_view(self, request, booking_id: int, slug: str):
        """Show an action's form; on POST check the permission again and make its one service call."""
        booking = get_object_or_404(
            Booking.objects.select_related("customer", "offering__location"), pk=booking_id
        )
        action = next((a for a in self.staff_actions if a.slug == slug), None)
        if action is None:
            raise PermissionDenied
        if not request.user.has_perm(action.permission):
            raise PermissionDenied(f"You are not allowed to {action.label.rstrip('…').lower()}.")
        now = timezone.now()
        form = action.form(request.POST if request.method == "POST" else None, booking=booking, now=now)
        if request.method == "POST" and form.is_valid():
            if not action.available(booking):
                messages.error(request, f"{action.label.rstrip('…')} no longer applies to this booking.")
                return redirect("admin:booking_booking_change", booking.pk)
            try:
                message = action.run(booking, {**form.cleaned_data, "_form": form}, request, now)
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, message)
                return redirect("admin:booking_booking_change", booking.pk)
        return render(
            request,
            "admin/booking/staff_action.html",
            {
                **self.admin_site.each_context(request),
                "opts": Booking._meta,
                "booking": booking,
                "action": action,
                "form": form,
                "title": f"{action.label.rstrip('…')}: booking {booking.reference}",
            },
        )


def _data_text(data: dict) -> str:
    parts = []
    for key, value in (data or {}).items():
        if key == "status":
            continue
        parts.append(f"{key}: {value}")
    return "; ".join(parts)[:600]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "phone", "created_at")
    search_fields = ("name", "email", "phone")


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(admin.ModelAdmin):
    list_display = ("session", "customer", "quantity", "status", "created_at")
    list_filter = ("status",)
    list_select_related = ("session__offering__location", "customer")
    readonly_fields = ("offer",)
