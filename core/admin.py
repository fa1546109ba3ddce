from django.contrib import admin, messages
from django.utils import timezone

from core.auth import ThrottledAdminAuthenticationForm
from core.models import OutboxMessage, TimelineEntry
from core.outbox.services import outbox_message_retry

# Failed staff sign-ins are throttled (core/auth.py).
admin.site.login_form = ThrottledAdminAuthenticationForm


@admin.register(TimelineEntry)
class TimelineEntryAdmin(admin.ModelAdmin):
    """The audit trail is evidence: staff can read and search it, nobody edits or deletes it."""

    list_display = ("created_at", "action", "subject_type", "subject_id", "actor")
    list_filter = ("subject_type", "action")
    search_fields = ("action", "subject_id", "actor")
    date_hierarchy = "created_at"
    list_select_related = ("subject_type",)
    readonly_fields = [f.name for f in TimelineEntry._meta.fields]
    ordering = ("-created_at", "-id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "topic",
        "handler",
        "status",
        "attempts",
        "created_at",
        "available_at",
        "delivered_at",
    )
    list_filter = ("status", "topic", "handler")
    search_fields = ("topic", "handler", "key")
    readonly_fields = [f.name for f in OutboxMessage._meta.fields]
    ordering = ("-id",)
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Deliver again now (failed or waiting messages)")
    def retry_now(self, request, queryset):
        now = timezone.now()
        retried = 0
        for message in queryset.exclude(status=OutboxMessage.Status.DELIVERED):
            outbox_message_retry(message=message, now=now)
            retried += 1
        self.message_user(request, f"{retried} message(s) queued for delivery.", messages.SUCCESS)
