"""Django admin for bookings (staff operations grow here in the staff-operations work)."""

from django.contrib import admin

from booking.models import Booking, BookingItem, Customer, WaitlistEntry


class ItemInline(admin.TabularInline):
    model = BookingItem
    extra = 0
    fields = ("attendee_name", "attendee_email", "ticket_type", "zone", "seat", "price", "price_name")
    readonly_fields = ("ticket_type", "zone", "seat", "price", "price_name")
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    list_display = (
        "reference",
        "customer",
        "offering",
        "starts_at",
        "status",
        "total_amount",
        "needs_attention",
    )
    list_filter = ("status", "needs_attention", "offering__kind", "offering")
    search_fields = ("reference", "customer__name", "customer__email", "customer__phone")
    date_hierarchy = "starts_at"
    list_select_related = ("customer", "offering")
    inlines = [ItemInline]
    readonly_fields = [f.name for f in Booking._meta.fields if f.name not in ("notes",)]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
