"""Admin for a shop owner: locations, people and rooms with their hours, what is sold and when.

Times in admin are shown and entered in the business's zone (BUSINESS_TIME_ZONE), each field
labelled with it; working hours are wall-clock times in the resource's location.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet
from django.utils import timezone

from inventory.models import (
    Allocation,
    Blackout,
    BusyBlock,
    CancellationPolicy,
    CapacityCounter,
    Category,
    DateOverride,
    Location,
    Offering,
    PriceTier,
    RefundTier,
    Resource,
    ResourceRequirement,
    Seat,
    Session,
    SessionSeries,
    TicketType,
    Weekday,
    WorkingHours,
    Zone,
)
from inventory.selectors import resources_busy_between
from inventory.services import (
    periods_overlap_message,
    resource_save,
    series_generate_sessions,
    session_create,
    zone_seat_map_generate,
)


class NoOverlapFormSet(BaseInlineFormSet):
    """Refuse periods in one submission that overlap each other (the database checks saved rows)."""

    key_field = "weekday"

    def describe(self, key) -> str:
        return Weekday(key).label if self.key_field == "weekday" else f"{key:%a %d %b %Y}"

    def clean(self) -> None:
        super().clean()
        periods = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or data.get("is_closed"):
                continue
            periods.append((data.get(self.key_field), data.get("start_time"), data.get("end_time")))
        message = periods_overlap_message(periods, describe=self.describe)
        if message:
            raise ValidationError(message)


class WorkingHoursInline(admin.TabularInline):
    model = WorkingHours
    formset = NoOverlapFormSet
    extra = 0
    verbose_name_plural = "Weekly working hours (local time at the location)"


class DateOverrideFormSet(NoOverlapFormSet):
    key_field = "date"

    def clean(self) -> None:
        super().clean()
        states: dict = {}
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or not data.get("date"):
                continue
            states.setdefault(data["date"], set()).add(bool(data.get("is_closed")))
        for day, kinds in states.items():
            if len(kinds) > 1:
                raise ValidationError(f"{day:%a %d %b %Y} is marked both closed and open; keep one.")


class DateOverrideInline(admin.TabularInline):
    model = DateOverride
    formset = DateOverrideFormSet
    extra = 0
    verbose_name_plural = "Date overrides (replace the weekly hours on a date: closed, or other hours)"


class ResourceBlackoutInline(admin.TabularInline):
    model = Blackout
    fk_name = "resource"
    fields = ("starts_at", "ends_at", "reason")
    extra = 0
    verbose_name_plural = "Blackouts (maintenance, holidays)"


class ResourceForm(forms.ModelForm):
    class Meta:
        model = Resource
        fields = ("location", "name", "kind", "count", "email", "bio", "is_active")

    def clean_count(self):
        count = self.cleaned_data["count"]
        if self.instance.pk and count < self.instance.units.filter(is_active=True).count():
            surplus = self.instance.units.filter(is_active=True).order_by("number")[count:]
            busy = Allocation.objects.filter(
                unit__in=list(surplus), is_active=True, ends_at__gt=timezone.now()
            )
            if busy.exists():
                raise ValidationError(
                    f"{busy.count()} upcoming booking(s) use the units that would go; "
                    "move or cancel them first."
                )
        return count


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ("name", "city", "time_zone")
    search_fields = ("name", "city")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Resource)
class ResourceAdmin(admin.ModelAdmin):
    form = ResourceForm
    list_display = ("name", "kind", "location", "count", "is_active")
    list_filter = ("kind", "location", "is_active")
    search_fields = ("name", "email")
    inlines = [WorkingHoursInline, DateOverrideInline, ResourceBlackoutInline]

    def save_model(self, request, obj, form, change):
        resource_save(resource=obj, now=timezone.now())


@admin.register(Blackout)
class BlackoutAdmin(admin.ModelAdmin):
    list_display = ("reason", "location", "resource", "starts_at", "ends_at")
    list_filter = ("location", "resource")
    date_hierarchy = "starts_at"


@admin.register(BusyBlock)
class BusyBlockAdmin(admin.ModelAdmin):
    list_display = ("resource", "starts_at", "ends_at", "source", "summary")
    list_filter = ("source", "resource")
    date_hierarchy = "starts_at"
    search_fields = ("summary", "external_id")

    def save_model(self, request, obj, form, change):
        obj.updated_at = timezone.now()
        if not obj.source:
            obj.source = "manual"
        super().save_model(request, obj, form, change)

    def get_exclude(self, request, obj=None):
        return ("updated_at",)


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}


class RefundTierInline(admin.TabularInline):
    model = RefundTier
    extra = 1


@admin.register(CancellationPolicy)
class CancellationPolicyAdmin(admin.ModelAdmin):
    list_display = ("name", "customer_can_cancel", "customer_can_reschedule")
    inlines = [RefundTierInline]


class RequirementInline(admin.StackedInline):
    model = ResourceRequirement
    extra = 0
    filter_horizontal = ("candidates",)
    verbose_name_plural = "Resources needed (appointments): e.g. one of these stylists + one of these rooms"


class ZoneInline(admin.TabularInline):
    model = Zone
    extra = 0
    fields = ("name", "capacity", "is_seated", "sort_order")
    show_change_link = True
    verbose_name_plural = "Zones (events): each with its own capacity; open a zone to build its seat map"


class TicketTypeInline(admin.TabularInline):
    model = TicketType
    extra = 0
    fields = ("name", "price", "limit_per_session", "sort_order")
    show_change_link = True
    verbose_name_plural = "Ticket types (events): open one to limit it to zones or add price tiers"


class SeriesInline(admin.TabularInline):
    model = SessionSeries
    extra = 0
    fields = ("weekday", "start_time", "duration", "capacity", "starts_on", "ends_on")
    show_change_link = True
    verbose_name_plural = "Weekly series (classes): use the series action to create their sessions"


@admin.register(Offering)
class OfferingAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "location", "category", "price", "currency", "is_published")
    list_filter = ("kind", "location", "category", "is_published")
    search_fields = ("name", "description")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = [
        (None, {"fields": ("kind", "name", "slug", "location", "category", "is_published")}),
        ("Shown to customers", {"fields": ("description", "restrictions", "cancellation_policy")}),
        ("Price", {"fields": ("price", "currency")}),
        (
            "When it can be booked",
            {
                "fields": (
                    "sales_open_at",
                    "sales_close_at",
                    "min_notice",
                    "horizon",
                    "hold_minutes",
                    "max_places_per_booking",
                    "waitlist_enabled",
                )
            },
        ),
        (
            "Appointments only",
            {
                "fields": (
                    "duration",
                    "slot_interval",
                    "buffer_before",
                    "buffer_after",
                    "daily_limit_per_resource",
                )
            },
        ),
    ]
    inlines = [RequirementInline, ZoneInline, TicketTypeInline, SeriesInline]


class PriceTierInline(admin.TabularInline):
    model = PriceTier
    extra = 0


@admin.register(TicketType)
class TicketTypeAdmin(admin.ModelAdmin):
    list_display = ("name", "offering", "price", "limit_per_session")
    list_filter = ("offering",)
    filter_horizontal = ("zones",)
    inlines = [PriceTierInline]


class ZoneForm(forms.ModelForm):
    rows = forms.IntegerField(
        required=False, min_value=1, max_value=200, help_text="Seat map: number of rows"
    )
    seats_per_row = forms.IntegerField(
        required=False, min_value=1, max_value=500, help_text="Seats in each row"
    )

    class Meta:
        model = Zone
        fields = ("offering", "name", "capacity", "is_seated", "sort_order")

    def clean(self):
        data = super().clean()
        if bool(data.get("rows")) != bool(data.get("seats_per_row")):
            raise ValidationError("Give both the number of rows and the seats per row to build a seat map.")
        return data


@admin.register(Zone)
class ZoneAdmin(admin.ModelAdmin):
    form = ZoneForm
    list_display = ("name", "offering", "capacity", "is_seated", "seat_count")
    list_filter = ("offering",)
    readonly_fields = ("seat_map",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_seats=Count("seats"))

    @admin.display(description="seats")
    def seat_count(self, obj):
        return obj.n_seats

    @admin.display(description="current seat map")
    def seat_map(self, obj):
        rows: dict[str, int] = {}
        for seat in obj.seats.all():
            rows[seat.row] = rows.get(seat.row, 0) + 1
        return ", ".join(f"row {r}: {n} seats" for r, n in rows.items()) or "no seats yet"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        rows, per_row = form.cleaned_data.get("rows"), form.cleaned_data.get("seats_per_row")
        if rows and per_row:
            try:
                seats = zone_seat_map_generate(zone=obj, rows=rows, seats_per_row=per_row, now=timezone.now())
            except ValidationError as error:
                self.message_user(request, "; ".join(error.messages), messages.ERROR)
            else:
                self.message_user(request, f"Seat map built: {len(seats)} seats.", messages.SUCCESS)


@admin.register(Seat)
class SeatAdmin(admin.ModelAdmin):
    list_display = ("label", "zone", "row", "number")
    list_filter = ("zone__offering", "zone")
    search_fields = ("label",)


@admin.register(SessionSeries)
class SessionSeriesAdmin(admin.ModelAdmin):
    list_display = ("offering", "weekday", "start_time", "duration", "capacity", "starts_on", "ends_on")
    filter_horizontal = ("resources",)
    actions = ["generate_sessions"]

    @admin.action(description="Create the sessions of the selected series")
    def generate_sessions(self, request, queryset):
        total = 0
        for series in queryset.select_related("offering__location"):
            try:
                total += len(series_generate_sessions(series=series, now=timezone.now()))
            except ValidationError as error:
                self.message_user(request, f"{series}: {'; '.join(error.messages)}", messages.ERROR)
        self.message_user(request, f"{total} session(s) created.", messages.SUCCESS)


class CounterForm(forms.ModelForm):
    class Meta:
        model = CapacityCounter
        fields = ("capacity",)

    def clean_capacity(self):
        # held and sold are read-only here, so Django skips the CHECK that spans them: say it ourselves.
        capacity = self.cleaned_data["capacity"]
        taken = self.instance.held + self.instance.sold
        if capacity < taken:
            raise ValidationError(f"Capacity cannot be lower than the places already held or sold ({taken}).")
        return capacity


class CounterInline(admin.TabularInline):
    model = CapacityCounter
    form = CounterForm
    fields = ("zone", "ticket_type", "capacity", "held", "sold")
    readonly_fields = ("zone", "ticket_type", "held", "sold")
    extra = 0
    can_delete = False
    verbose_name_plural = "Places (capacity can be raised, or lowered down to what is held and sold)"

    def has_add_permission(self, request, obj=None):
        return False


class SessionAddForm(forms.ModelForm):
    capacity = forms.IntegerField(
        min_value=1,
        required=False,
        help_text="Classes: places per session. Events: empty for the sum of the zones.",
    )

    class Meta:
        model = Session
        fields = ("offering", "starts_at", "ends_at", "resources")

    def clean(self):
        data = super().clean()
        offering = data.get("offering")
        if offering and offering.kind == Offering.Kind.APPOINTMENT:
            raise ValidationError("Appointments have no sessions: customers pick slots from working hours.")
        if offering and offering.kind == Offering.Kind.CLASS and not data.get("capacity"):
            self.add_error("capacity", "A class session needs a capacity.")
        no_capacity = not data.get("capacity")
        if offering and offering.kind == Offering.Kind.EVENT and no_capacity and not offering.zones.exists():
            self.add_error("capacity", "Give a capacity, or add zones to the event first.")
        starts_at, ends_at = data.get("starts_at"), data.get("ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            self.add_error("ends_at", "The session must end after it starts.")
        elif starts_at and ends_at:
            busy = resources_busy_between(resources=data.get("resources") or [], start=starts_at, end=ends_at)
            if busy:
                names = ", ".join(r.name for r in busy)
                self.add_error("resources", f"Already booked at that time: {names}.")
        return data


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("offering", "starts_at", "ends_at", "status", "places")
    list_filter = ("status", "offering__kind", "offering")
    date_hierarchy = "starts_at"
    filter_horizontal = ("resources",)
    inlines = [CounterInline]

    def get_queryset(self, request):
        total = Q(counters__zone__isnull=True, counters__ticket_type__isnull=True)
        from django.db.models import Sum

        return (
            super()
            .get_queryset(request)
            .select_related("offering__location")
            .annotate(
                cap=Sum("counters__capacity", filter=total),
                taken=Sum("counters__sold", filter=total) + Sum("counters__held", filter=total),
            )
        )

    @admin.display(description="places taken")
    def places(self, obj):
        return f"{obj.taken or 0} / {obj.cap or 0}"

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = SessionAddForm
        return super().get_form(request, obj, **kwargs)

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def get_readonly_fields(self, request, obj=None):
        return ("offering", "starts_at", "ends_at", "series", "resources") if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        created = session_create(
            offering=form.cleaned_data["offering"],
            starts_at=form.cleaned_data["starts_at"],
            ends_at=form.cleaned_data["ends_at"],
            capacity=form.cleaned_data.get("capacity"),
            resources=list(form.cleaned_data.get("resources") or []),
            now=timezone.now(),
        )
        obj.pk = created.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)


@admin.register(Allocation)
class AllocationAdmin(admin.ModelAdmin):
    """Time taken on resources: read-only here, it changes only through bookings and sessions."""

    list_display = ("resource", "unit", "starts_at", "ends_at", "holder", "is_active")
    list_filter = ("is_active", "resource")
    date_hierarchy = "starts_at"
    search_fields = ("holder",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
