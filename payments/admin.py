"""Admin for payments: plans on each offering, and every Stripe reference on each booking.

Payments sits above booking and inventory, so it extends their admin pages (registered there)
rather than the other way round.
"""

import uuid
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from booking.admin import BookingAdmin, ConfirmForm, StaffAction
from booking.models import Booking, BookingStatus
from core.errors import ApplicationError
from inventory.admin import OfferingAdmin
from inventory.models import Offering
from payments.models import Payment, PaymentPlan, Refund, WebhookEvent
from payments.money import money
from payments.selectors import live_payment
from payments.services import (
    authorization_capture,
    authorization_release,
    no_show_record,
    payment_refund,
)


class PaymentPlanInline(admin.StackedInline):
    model = PaymentPlan
    extra = 0
    max_num = 1
    verbose_name_plural = "Payment plan (none: paid in full when booking)"


admin.site.unregister(Offering)


@admin.register(Offering)
class OfferingWithPlanAdmin(OfferingAdmin):
    inlines = [*OfferingAdmin.inlines, PaymentPlanInline]


class PaymentInline(admin.TabularInline):
    model = Payment
    extra = 0
    can_delete = False
    fields = (
        "purpose",
        "status",
        "amount_display",
        "received",
        "refunded",
        "stripe_payment_intent_id",
        "stripe_setup_intent_id",
        "stripe_charge_id",
        "stripe_customer_id",
        "stripe_payment_method_id",
        "failure_message",
        "updated_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="amount")
    def amount_display(self, obj):
        return money(obj.amount, obj.currency)

    @admin.display(description="received")
    def received(self, obj):
        return money(obj.amount_received, obj.currency)

    @admin.display(description="refunded")
    def refunded(self, obj):
        return money(obj.amount_refunded, obj.currency)


class RefundInline(admin.TabularInline):
    model = Refund
    fk_name = "payment"
    extra = 0
    can_delete = False
    readonly_fields = ("amount", "status", "reason", "stripe_refund_id", "requested_by", "created_at")
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False  # refunds go through Stripe: use "Refund…" on the booking


class RefundForm(forms.Form):
    amount = forms.DecimalField(min_value=Decimal("0.01"), decimal_places=2, label="Amount to refund")
    reason = forms.CharField(max_length=200)
    idempotency_key = forms.CharField(widget=forms.HiddenInput)


class CaptureForm(forms.Form):
    amount = forms.DecimalField(
        min_value=Decimal("0.01"),
        decimal_places=2,
        required=False,
        label="Amount to take",
        help_text="Empty: all that was authorised. Less: the rest is released to the card.",
    )

    def __init__(self, data=None, *, booking, now):
        super().__init__(data)


def _authorised(booking) -> bool:
    payment = live_payment(booking=booking, purposes=(Payment.Purpose.AUTHORIZATION,))
    return payment is not None and payment.status == Payment.Status.AUTHORIZED


def _capture(booking, data, request, now) -> str:
    payment = authorization_capture(booking=booking, now=now, amount=data["amount"], acting_user=request.user)
    taken = money(payment.amount_received, payment.currency) if payment else "it"
    return f"Captured {taken}; the rest of the authorisation, if any, is released."


def _release(booking, data, request, now) -> str:
    authorization_release(booking=booking, now=now, acting_user=request.user)
    return "Released: nothing is taken from the card."


def _no_show(booking, data, request, now) -> str:
    payment = no_show_record(booking=booking, now=now, acting_user=request.user)
    if payment is None:
        return "Marked as a no-show (this offering has no no-show fee)."
    return f"Marked as a no-show; fee {payment.get_status_display().lower()}."


PAYMENT_ACTIONS = [
    StaffAction(
        "capture",
        "Capture the card authorisation…",
        "payments.change_payment",
        CaptureForm,
        _capture,
        _authorised,
    ),
    StaffAction(
        "release",
        "Release the card authorisation",
        "payments.change_payment",
        ConfirmForm,
        _release,
        _authorised,
        "Cancels the hold on the customer's card; the booking itself is not cancelled.",
    ),
    StaffAction(
        "no-show",  # replaces booking's own: payments also charges the fee
        "Mark as no-show (and charge the fee)",
        "booking.change_booking",
        ConfirmForm,
        _no_show,
        lambda booking: booking.status == BookingStatus.CONFIRMED,
        "Charges the offering's no-show fee, if it has one, to the card saved at checkout.",
    ),
]


def _merged(actions, extra):
    slugs = {a.slug for a in extra}
    return [a for a in actions if a.slug not in slugs] + list(extra)


admin.site.unregister(Booking)


@admin.register(Booking)
class BookingWithPaymentsAdmin(BookingAdmin):
    inlines = [*BookingAdmin.inlines, PaymentInline]
    list_display = (
        "reference",
        "customer",
        "offering",
        "starts",
        "status_shown",
        "total_amount",
        "needs_attention",
    )
    readonly_fields = [*BookingAdmin.readonly_fields, "refunds", "refund_link"]
    staff_actions = _merged(BookingAdmin.staff_actions, PAYMENT_ACTIONS)

    @admin.display(description="status")
    def status_shown(self, obj):
        return obj.display_status

    @admin.display(description="refunds (with Stripe ids)")
    def refunds(self, obj):
        rows = Refund.objects.filter(payment__booking=obj).select_related("payment")
        lines = [
            (
                money(r.amount, r.payment.currency),
                r.get_status_display(),
                r.stripe_refund_id or "—",
                r.reason,
                r.requested_by,
            )
            for r in rows
        ]
        return format_html_join(mark_safe("<br>"), "{} · {} · {} · {} · by {}", lines) or "none"

    @admin.display(description="refund")
    def refund_link(self, obj):
        if not obj.pk or obj.amount_paid <= obj.amount_refunded:
            return "nothing left to refund"
        return format_html(
            '<a class="button" href="{}">Refund…</a>', reverse("admin:booking_refund", args=[obj.pk])
        )

    def get_urls(self):
        return [
            path(
                "<int:booking_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="booking_refund",
            ),
            *super().get_urls(),
        ]

    def refund_view(self, request, booking_id: int):
        """Refund part or all of what a booking paid (never more), recorded with Stripe's ids."""
        booking = get_object_or_404(Booking, pk=booking_id)
        if not request.user.has_perm("payments.add_refund"):
            raise PermissionDenied("You are not allowed to refund.")
        form = RefundForm(
            request.POST or None,
            initial={
                "idempotency_key": uuid.uuid4().hex,
                "amount": booking.amount_paid - booking.amount_refunded,
            },
        )
        limit = settings.FRONT_DESK_REFUND_LIMIT
        if (
            request.method == "POST"
            and form.is_valid()
            and form.cleaned_data["amount"] > limit
            and not request.user.has_perm("booking.refund_any_amount")
        ):
            form.add_error("amount", f"You may refund at most {limit} {booking.currency}; ask a manager.")
        if request.method == "POST" and form.is_valid():
            try:
                payment_refund(
                    booking=booking,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    now=timezone.now(),
                    idempotency_key=f"admin-{form.cleaned_data['idempotency_key']}",
                    acting_user=request.user,
                )
            except ApplicationError as error:
                form.add_error("amount", error.message)
            else:
                messages.success(request, f"Refunded {form.cleaned_data['amount']} {booking.currency}.")
                return redirect("admin:booking_booking_change", booking_id)
        return render(
            request,
            "admin/payments/refund.html",
            {
                **self.admin_site.each_context(request),
                "booking": booking,
                "form": form,
                "title": f"Refund booking {booking.reference}",
                "refundable": booking.amount_paid - booking.amount_refunded,
            },
        )


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = (
        "booking",
        "purpose",
        "status",
        "amount",
        "currency",
        "stripe_payment_intent_id",
        "updated_at",
    )
    list_filter = ("status", "purpose")
    search_fields = (
        "booking__reference",
        "stripe_payment_intent_id",
        "stripe_setup_intent_id",
        "stripe_charge_id",
    )
    readonly_fields = [f.name for f in Payment._meta.fields]
    inlines = [RefundInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ("stripe_event_id", "type", "object_id", "received_at")
    list_filter = ("type",)
    search_fields = ("stripe_event_id", "object_id")

    def has_add_permission(self, request):
        return False
