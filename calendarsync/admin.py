"""Admin for calendar connections: connect, reconnect, sync now, disconnect, and see what is wrong."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from calendarsync.models import CalendarConnection, CalendarEvent
from calendarsync.providers.base import ProviderError
from calendarsync.services import CalendarError, connection_create, connection_disconnect, connection_grant
from core.broker import task_publish


class ConnectionForm(forms.ModelForm):
    caldav_url = forms.URLField(
        assume_scheme="https",
        label="CalDAV server address",
        required=False,
        help_text="e.g. https://caldav.fastmail.com/ (CalDAV only)",
    )
    caldav_username = forms.CharField(label="CalDAV user name", required=False)
    caldav_password = forms.CharField(
        label="CalDAV password",
        required=False,
        widget=forms.PasswordInput,
        help_text="An app-specific password where the provider offers one. Stored encrypted; "
        "on an existing connection, type a new one to reconnect.",
    )

    class Meta:
        model = CalendarConnection
        fields = ["resource", "provider", "mode", "calendar_id", "notify_email"]

    def clean(self):
        data = super().clean()
        provider = data.get("provider") or (self.instance.provider if self.instance.pk else "")
        resource = data.get("resource")
        live = CalendarConnection.objects.filter(resource=resource).exclude(status="disconnected")
        if not self.instance.pk and resource is not None and live.exists():
            raise forms.ValidationError(f"{resource.name} already has a calendar; disconnect it first.")
        self.credentials = None
        if provider != CalendarConnection.Provider.CALDAV:
            return data
        password = data.get("caldav_password")
        if not self.instance.pk or password:
            url, username = data.get("caldav_url"), data.get("caldav_username")
            if not (url and username and password):
                raise forms.ValidationError(
                    "A CalDAV calendar needs the server address, user name and password."
                )
            from calendarsync.providers.caldav import calendar_discover

            try:
                calendars = calendar_discover(url=url, username=username, password=password)
            except ProviderError as error:
                raise forms.ValidationError(
                    f"The CalDAV server did not accept these details: {error}"
                ) from error
            if not calendars:
                raise forms.ValidationError("This CalDAV account has no calendars.")
            chosen = data.get("calendar_id") or self.instance.calendar_id
            if chosen and chosen not in [c[0] for c in calendars]:
                names = ", ".join(f"{name} ({url})" for url, name in calendars)
                raise forms.ValidationError(f"No such calendar in this account. Its calendars: {names}")
            data["calendar_id"] = chosen or calendars[0][0]
            self.credentials = {"url": url, "username": username, "password": password, "account": username}
        return data


class CalendarEventInline(admin.TabularInline):
    model = CalendarEvent
    extra = 0
    can_delete = False
    fields = ("booking", "starts_at", "ends_at", "status", "pushed_at")
    readonly_fields = fields
    ordering = ("-starts_at",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(CalendarConnection)
class CalendarConnectionAdmin(admin.ModelAdmin):
    form = ConnectionForm
    list_display = ("resource", "provider", "mode", "status_shown", "account", "last_synced_at", "last_error")
    list_filter = ("status", "provider", "mode")
    search_fields = ("resource__name", "account", "notify_email")
    list_select_related = ("resource",)
    readonly_fields = ("status_shown", "account", "last_synced_at", "failing_since", "last_error", "push")
    actions = ["sync_now", "disconnect"]
    inlines = [CalendarEventInline]

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def get_fieldsets(self, request, obj=None):
        caldav = ("caldav_url", "caldav_username", "caldav_password")
        main = ("resource", "provider", "mode", "calendar_id", "notify_email")
        if obj is None:
            return [(None, {"fields": main}), ("CalDAV", {"fields": caldav})]
        state = ("status_shown", "account", "last_synced_at", "failing_since", "last_error", "push")
        sets = [(None, {"fields": main}), ("State", {"fields": state})]
        if obj.provider == CalendarConnection.Provider.CALDAV:
            sets.append(("Reconnect (CalDAV)", {"fields": caldav}))
        return sets

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "resource", "provider") if obj else self.readonly_fields

    @admin.display(description="Status")
    def status_shown(self, obj):
        if obj.status == CalendarConnection.Status.NEEDS_RECONNECT:
            return format_html(
                '<strong style="color:#b00020">Needs reconnecting</strong> — <a href="{}">Reconnect</a>',
                reverse("calendarsync:connect", args=[obj.pk]),
            )
        if obj.status == CalendarConnection.Status.FAILING:
            return format_html(
                '<strong style="color:#a05a00">Unreachable since {}</strong> (using the last busy time)',
                timezone.localtime(obj.failing_since).strftime("%d %b %H:%M %Z")
                if obj.failing_since
                else "?",
            )
        if (
            obj.status == CalendarConnection.Status.PENDING
            and obj.provider != CalendarConnection.Provider.CALDAV
        ):
            return format_html(
                'Waiting for the grant — <a href="{}">Connect</a>',
                reverse("calendarsync:connect", args=[obj.pk]),
            )
        return obj.get_status_display()

    @admin.display(description="Push notifications")
    def push(self, obj):
        if obj.provider == CalendarConnection.Provider.CALDAV:
            return "CalDAV has none: synced every few minutes."
        if not obj.channel_expires_at:
            return "Not open: synced every few minutes."
        return f"Open until {timezone.localtime(obj.channel_expires_at):%d %b %H:%M %Z}"

    def save_model(self, request, obj, form, change):
        now = timezone.now()
        try:
            if not change:
                created = connection_create(
                    resource=form.cleaned_data["resource"],
                    provider=form.cleaned_data["provider"],
                    mode=form.cleaned_data["mode"],
                    calendar_id=form.cleaned_data.get("calendar_id", ""),
                    notify_email=form.cleaned_data.get("notify_email", ""),
                    credentials=form.credentials,
                    account=(form.credentials or {}).get("account", ""),
                    now=now,
                    acting_user=request.user,
                )
                obj.pk = created.pk
                obj.provider = created.provider
                return
            CalendarConnection.objects.filter(pk=obj.pk).update(
                mode=obj.mode, calendar_id=obj.calendar_id, notify_email=obj.notify_email, updated_at=now
            )
            if form.credentials:
                connection_grant(
                    connection=obj, credentials=form.credentials, now=now, acting_user=request.user
                )
        except CalendarError as error:
            self.message_user(request, error.message, messages.ERROR)

    def response_add(self, request, obj, post_url_continue=None):
        if obj.pk and obj.provider != CalendarConnection.Provider.CALDAV:
            return HttpResponseRedirect(reverse("calendarsync:connect", args=[obj.pk]))
        return super().response_add(request, obj, post_url_continue)

    def has_delete_permission(self, request, obj=None):
        return False  # disconnect instead: it stops push channels and removes the busy time

    @admin.action(description="Sync now", permissions=["change"])
    def sync_now(self, request, queryset):
        for connection in queryset.filter(status__in=["connected", "failing"]):
            task_publish("calendarsync.tasks.calendar_sync", kwargs={"connection_id": connection.pk})
        self.message_user(request, "Sync queued; refresh in a few seconds.")

    @admin.action(
        description="Disconnect (removes its busy time; our events stay in the calendar)",
        permissions=["change"],
    )
    def disconnect(self, request, queryset):
        for connection in queryset.exclude(status="disconnected"):
            connection_disconnect(connection=connection, now=timezone.now(), acting_user=request.user)
        self.message_user(request, "Disconnected.")
