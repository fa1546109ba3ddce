"""Calendar connections: busy time in, bookings out.

Provider calls happen outside database transactions (a slow calendar never holds a lock a customer's
booking waits for); what they return is applied in one short transaction. The sync token is advanced
by a compare-and-set, so two syncs of one calendar racing (a push and the periodic sweep) cannot both
apply: the second finds the token moved and leaves the data to the newer answer.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse

from booking.models import Booking, BookingItem, BookingStatus
from booking.services import booking_flag_attention
from calendarsync import timeline
from calendarsync.models import CalendarConnection, CalendarEvent
from calendarsync.providers.base import (
    Changes,
    ExternalEvent,
    GrantRevoked,
    OutboundEvent,
    ProviderError,
    ProviderUnavailable,
    SyncTokenExpired,
    our_event_id,
)
from core.broker import task_publish
from core.errors import ApplicationError
from core.outbox.services import outbox_enqueue
from core.transactions import service_transaction
from inventory.models import Allocation, BusyBlock, Resource

log = logging.getLogger(__name__)

DAYS_BACK = 1
DAYS_AHEAD = 366
PUSH_TTL = timedelta(days=7)
RENEW_BEFORE = timedelta(days=1)
MOVED_TOLERANCE = timedelta(minutes=1)
IN_CALENDAR = (BookingStatus.CONFIRMED, BookingStatus.COMPLETED, BookingStatus.NO_SHOW)


class CalendarError(ApplicationError):
    """A calendar connection could not be made or used; the message says why, for staff."""


def adapter_for(connection: CalendarConnection):
    """The provider's adapter for this connection, with its decrypted credentials."""
    if connection.provider == CalendarConnection.Provider.GOOGLE:
        from calendarsync.providers.google import GoogleAdapter as Adapter
    elif connection.provider == CalendarConnection.Provider.MICROSOFT:
        from calendarsync.providers.microsoft import MicrosoftAdapter as Adapter
    else:
        from calendarsync.providers.caldav import CalDAVAdapter as Adapter
    return Adapter(credentials=connection.credentials(), calendar_id=connection.calendar_id)


def _keep_credentials(connection: CalendarConnection, adapter, now: datetime) -> None:
    """Store tokens the provider refreshed or rotated (Microsoft rotates refresh tokens)."""
    if getattr(adapter, "credentials_changed", False):
        connection.set_credentials(adapter.credentials)
        CalendarConnection.objects.filter(pk=connection.pk).update(secret=connection.secret, updated_at=now)
        adapter.credentials_changed = False


# --- connecting -------------------------------------------------------------------------------------


def connection_create(
    *,
    resource: Resource,
    provider: str,
    mode: str,
    now: datetime,
    calendar_id: str = "",
    notify_email: str = "",
    credentials: dict | None = None,
    account: str = "",
    acting_user=None,
) -> CalendarConnection:
    """A new connection: pending until the OAuth grant arrives, or connected at once (CalDAV).

    :raises CalendarError: the resource already has a live calendar.
    """
    with service_transaction():
        if CalendarConnection.objects.filter(resource=resource).exclude(status="disconnected").exists():
            raise CalendarError(f"{resource.name} already has a calendar; disconnect it first.")
        connection = CalendarConnection(
            resource=resource,
            provider=provider,
            mode=mode,
            calendar_id=calendar_id,
            notify_email=notify_email or resource.email,
            account=account,
            status=CalendarConnection.Status.CONNECTED if credentials else CalendarConnection.Status.PENDING,
            created_at=now,
            updated_at=now,
        )
        if credentials:
            connection.set_credentials(credentials)
        connection.save()
        timeline.connection_created(connection, now=now, acting_user=acting_user)
        if credentials:
            _sync_soon(connection)
    return connection


def connection_grant(
    *, connection: CalendarConnection, credentials: dict, now: datetime, acting_user=None
) -> CalendarConnection:
    """The staff member granted access (first time or reconnecting): store the tokens and sync."""
    with service_transaction():
        connection = CalendarConnection.objects.get(pk=connection.pk)
        if connection.status == CalendarConnection.Status.DISCONNECTED:
            raise CalendarError("This connection was disconnected; add a new one.")
        connection.set_credentials(credentials)
        connection.account = credentials.get("account", "") or connection.account
        connection.status = CalendarConnection.Status.CONNECTED
        connection.last_error = ""
        connection.failing_since = None
        connection.sync_token = ""  # a new grant may see another account: start from a full sync
        connection.updated_at = now
        connection.save()
        timeline.connection_granted(connection, now=now, acting_user=acting_user)
        _sync_soon(connection)
    return connection


def connection_disconnect(*, connection: CalendarConnection, now: datetime, acting_user=None) -> None:
    """Stop syncing: the push channel is stopped, the busy time it brought is removed; our events stay
    in the staff member's calendar (they are real appointments)."""
    connection = CalendarConnection.objects.select_related("resource").get(pk=connection.pk)
    channel = _channel_of(connection)
    if channel and connection.secret:
        try:
            adapter_for(connection).unwatch(channel)
        except ProviderError as error:  # the channel expires by itself; do not keep a person waiting
            log.warning("calendar %s: could not stop push channel: %s", connection.pk, error)
    with service_transaction():
        BusyBlock.objects.filter(source=connection.source).delete()
        CalendarConnection.objects.filter(pk=connection.pk).update(
            status=CalendarConnection.Status.DISCONNECTED,
            secret=b"",
            sync_token="",
            channel_id="",
            channel_token="",
            channel_resource_id="",
            channel_expires_at=None,
            updated_at=now,
        )
        timeline.connection_disconnected(connection, now=now, acting_user=acting_user)


def _sync_soon(connection: CalendarConnection) -> None:
    transaction.on_commit(
        lambda: task_publish("calendarsync.tasks.calendar_sync", kwargs={"connection_id": connection.pk})
    )


# --- trouble ----------------------------------------------------------------------------------------


def connection_mark_revoked(*, connection: CalendarConnection, error: Exception, now: datetime) -> None:
    """The grant is gone: show it in admin, tell the staff member once, keep the last busy time."""
    with service_transaction():
        changed = (
            CalendarConnection.objects.filter(pk=connection.pk)
            .exclude(status__in=["needs_reconnect", "disconnected"])
            .update(status="needs_reconnect", last_error=str(error)[:2000], updated_at=now)
        )
        if changed:
            timeline.connection_revoked(connection, now=now, error=str(error))
            outbox_enqueue(
                topic="calendar.needs_reconnect",
                payload={"connection_id": connection.pk, "error": str(error)[:500]},
                now=now,
            )


def connection_mark_failing(*, connection: CalendarConnection, error: Exception, now: datetime) -> None:
    """The provider is down or limiting us: availability keeps the last known busy time, and admin
    shows since when."""
    with service_transaction():
        CalendarConnection.objects.filter(pk=connection.pk, status__in=["connected", "failing"]).update(
            status="failing", last_error=str(error)[:2000], updated_at=now
        )
        CalendarConnection.objects.filter(pk=connection.pk, failing_since__isnull=True).update(
            failing_since=now
        )


# --- inbound: their calendar becomes busy time --------------------------------------------------------


@dataclass
class SyncResult:
    full: bool = False
    busy_written: int = 0
    busy_removed: int = 0
    flagged: int = 0
    skipped: bool = False


def calendar_sync(*, connection_id: int, now: datetime) -> SyncResult:
    """Bring the connection's busy blocks up to date with its calendar.

    :raises ProviderUnavailable: the caller (a Celery task) retries with back-off; the connection shows
        as failing meanwhile and availability keeps the last known busy time.
    """
    connection = CalendarConnection.objects.select_related("resource__location").get(pk=connection_id)
    if not connection.is_live:
        return SyncResult(skipped=True)
    adapter = adapter_for(connection)
    token = connection.sync_token
    window = (now - timedelta(days=DAYS_BACK), now + timedelta(days=DAYS_AHEAD))
    try:
        try:
            changes = adapter.changes(token=token, window_start=window[0], window_end=window[1])
        except SyncTokenExpired:
            log.info("calendar %s: sync token expired, full sync", connection.pk)
            changes = adapter.changes(token="", window_start=window[0], window_end=window[1])
    except GrantRevoked as error:
        connection_mark_revoked(connection=connection, error=error, now=now)
        return SyncResult(skipped=True)
    except ProviderUnavailable as error:
        connection_mark_failing(connection=connection, error=error, now=now)
        raise
    finally:
        _keep_credentials(connection, adapter, now)
    result = _apply(connection, token, changes, now)
    if not result.skipped:
        connection_watch_renew(connection_id=connection.pk, now=now)
    return result


def _apply(connection: CalendarConnection, token: str, changes: Changes, now: datetime) -> SyncResult:
    result = SyncResult(full=changes.full)
    zone = ZoneInfo(connection.resource.location.time_zone)
    with service_transaction():
        # Compare-and-set on the token: the row lock of this UPDATE also queues a racing sync behind
        # us, which then finds the token moved and stops.
        moved = CalendarConnection.objects.filter(pk=connection.pk, sync_token=token).update(
            sync_token=changes.token,
            last_synced_at=now,
            status=CalendarConnection.Status.CONNECTED,
            last_error="",
            failing_since=None,
            updated_at=now,
        )
        if not moved:
            return SyncResult(skipped=True)
        links = {
            key: link
            for link in CalendarEvent.objects.filter(connection=connection).select_related("booking")
            for key in (link.our_id, link.external_id)
            if key
        }
        theirs: list[ExternalEvent] = []
        gone: set[str] = set(changes.removed)
        for event in changes.events:
            link = links.get(event.our_id) or links.get(event.id)
            if link is not None or event.our_id:
                if link is not None:
                    result.flagged += _compare_ours(link, event, zone, now)
                continue
            if event.cancelled or not event.busy:
                gone.add(event.id)
            else:
                theirs.append(event)
        for external_id in changes.removed:
            if external_id in links:
                result.flagged += _compare_ours(
                    links[external_id], ExternalEvent(id=external_id, cancelled=True), zone, now
                )
        blocks = [_busy_block(connection, event, zone, now) for event in theirs]
        blocks = [b for b in blocks if b is not None]
        # resource first: the unique index (resource, source, external_id) serves these deletes
        mine = BusyBlock.objects.filter(resource_id=connection.resource_id, source=connection.source)
        if changes.full:
            result.busy_removed = mine.exclude(external_id__in=[b.external_id for b in blocks]).delete()[0]
            mine.filter(external_id__in=[b.external_id for b in blocks]).delete()
        else:
            result.busy_removed = mine.filter(
                external_id__in=gone - {b.external_id for b in blocks}
            ).delete()[0]
            mine.filter(external_id__in=[b.external_id for b in blocks]).delete()
        BusyBlock.objects.bulk_create(blocks, batch_size=1000)
        result.busy_written = len(blocks)
        timeline.synced(
            connection,
            now=now,
            full=changes.full,
            written=result.busy_written,
            removed=result.busy_removed,
            flagged=result.flagged,
        )
    return result


def _busy_block(connection, event: ExternalEvent, zone: ZoneInfo, now: datetime) -> BusyBlock | None:
    if event.all_day:
        if event.start_date is None:
            return None
        end_date = event.end_date or event.start_date + timedelta(days=1)
        # An all-day event blocks the resource's own local days, whatever zone the calendar is in.
        starts = datetime.combine(event.start_date, time(), zone)
        ends = datetime.combine(end_date, time(), zone)
    else:
        starts, ends = event.starts_at, event.ends_at
    if starts is None or ends is None or ends <= starts:
        return None
    return BusyBlock(
        resource_id=connection.resource_id,
        starts_at=starts,
        ends_at=ends,
        source=connection.source,
        external_id=event.id[:255],
        summary=event.summary[:200],
        updated_at=now,
    )


def _compare_ours(link: CalendarEvent, event: ExternalEvent, zone: ZoneInfo, now: datetime) -> int:
    """One of our booking events changed in their calendar: a person decides, nothing is cancelled."""
    if link.status not in (CalendarEvent.Status.ACTIVE, CalendarEvent.Status.MOVED_OUTSIDE):
        return 0
    if event.cancelled:
        link.status = CalendarEvent.Status.DELETED_OUTSIDE
        link.save(update_fields=["status"])
        booking_flag_attention(
            booking=link.booking,
            now=now,
            reason=f"Deleted from {link.connection.resource.name}'s calendar; the booking still stands.",
            actor="calendar",
            calendar=link.connection.get_provider_display(),
        )
        return 1
    starts, ends = event.starts_at, event.ends_at
    if event.all_day and event.start_date:
        starts = datetime.combine(event.start_date, time(), zone)
        ends = datetime.combine(event.end_date or event.start_date + timedelta(days=1), time(), zone)
    if starts is None or ends is None:
        return 0
    if abs(starts - link.starts_at) <= MOVED_TOLERANCE and abs(ends - link.ends_at) <= MOVED_TOLERANCE:
        return 0
    if link.status == CalendarEvent.Status.MOVED_OUTSIDE and link.booking.attention_reason.endswith(
        _moved_text(link, starts, zone)
    ):
        return 0  # the same move reported again
    link.status = CalendarEvent.Status.MOVED_OUTSIDE
    link.save(update_fields=["status"])
    booking_flag_attention(
        booking=link.booking,
        now=now,
        reason=_moved_text(link, starts, zone),
        actor="calendar",
        calendar=link.connection.get_provider_display(),
        booked_start=link.starts_at.isoformat(),
        calendar_start=starts.isoformat(),
        calendar_end=ends.isoformat(),
    )
    return 1


def _moved_text(link: CalendarEvent, starts: datetime, zone: ZoneInfo) -> str:
    return (
        f"Moved in {link.connection.resource.name}'s calendar from "
        f"{link.starts_at.astimezone(zone):%a %d %b %H:%M} to {starts.astimezone(zone):%a %d %b %H:%M %Z}; "
        "the booking was not changed."
    )


# --- push channels -----------------------------------------------------------------------------------


def _channel_of(connection: CalendarConnection):
    from calendarsync.providers.base import PushChannel

    if not connection.channel_id:
        return None
    return PushChannel(
        id=connection.channel_id,
        token=connection.channel_token,
        resource_id=connection.channel_resource_id,
        expires_at=connection.channel_expires_at,
    )


def push_address(provider: str) -> str:
    return settings.SITE_URL + reverse(f"calendarsync:push_{provider}")


def connection_watch_renew(*, connection_id: int, now: datetime) -> bool:
    """Make sure the provider pushes changes: a channel is opened, or renewed a day before it ends.

    Returns whether a new channel was opened. Failing to open one is logged, not raised: the periodic
    sync still catches every change, only later.
    """
    connection = CalendarConnection.objects.get(pk=connection_id)
    if connection.provider == CalendarConnection.Provider.CALDAV or not connection.is_live:
        return False
    if connection.channel_expires_at and connection.channel_expires_at - now > RENEW_BEFORE:
        return False
    adapter = adapter_for(connection)
    old = _channel_of(connection)
    token = secrets.token_urlsafe(24)
    try:
        channel = adapter.watch(
            address=push_address(connection.provider),
            channel_id=f"calendar-{connection.pk}-{secrets.token_hex(8)}",
            token=token,
            ttl=PUSH_TTL,
            now=now,
        )
    except ProviderError as error:
        log.warning("calendar %s: push channel not opened: %s", connection.pk, error)
        return False
    finally:
        _keep_credentials(connection, adapter, now)
    if channel is None:
        return False
    CalendarConnection.objects.filter(pk=connection.pk).update(
        channel_id=channel.id,
        channel_token=channel.token,
        channel_resource_id=channel.resource_id,
        channel_expires_at=channel.expires_at,
        updated_at=now,
    )
    if old is not None:
        try:
            adapter.unwatch(old)
        except ProviderError as error:
            log.info("calendar %s: old channel not stopped (it expires anyway): %s", connection.pk, error)
    return True


def push_received(*, provider: str, channel_id: str, token: str) -> CalendarConnection | None:
    """A provider says something changed: the connection whose channel and secret match, if any."""
    if not channel_id or not token:
        return None
    connection = CalendarConnection.objects.filter(provider=provider, channel_id=channel_id).first()
    if connection is None or not secrets.compare_digest(connection.channel_token, token):
        return None
    return connection if connection.is_live else None


# --- outbound: bookings become events in their calendar -----------------------------------------------


def _booking_times_per_resource(booking: Booking) -> dict[int, tuple[datetime, datetime]]:
    """The appointment's time on each resource it took. (Class and event bookings take places, not a
    resource's time: the session's own allocation is not a booking to push.)"""
    holders = [
        f"booking_item:{pk}"
        for pk in BookingItem.objects.filter(booking=booking).values_list("pk", flat=True)
    ]
    times: dict[int, tuple[datetime, datetime]] = {}
    for resource_id, starts, ends in Allocation.objects.filter(
        holder__in=holders, is_active=True
    ).values_list("resource_id", "starts_at", "ends_at"):
        times[resource_id] = (starts, ends)
    return times


def calendar_booking_push(*, booking_id: int, now: datetime) -> int:
    """Put the booking into (or take it out of) the calendars of its resources; returns calls made.

    Idempotent: events carry the id we chose, so a retry after a timeout overwrites rather than
    duplicates, and an event already as it should be is not touched.
    :raises ProviderUnavailable: the outbox retries with back-off.
    """
    live = Q(mode=CalendarConnection.Mode.TWO_WAY, status__in=["connected", "failing"])
    if not CalendarConnection.objects.filter(live | Q(events__booking_id=booking_id)).exists():
        return 0  # no two-way calendar anywhere and none holds this booking: one query, not ten
    booking = Booking.objects.select_related("customer", "offering__location", "session").get(pk=booking_id)
    wanted = _booking_times_per_resource(booking) if booking.status in IN_CALENDAR else {}
    connections = {c.pk: c for c in CalendarConnection.objects.filter(live, resource_id__in=wanted)}
    links = {link.connection_id: link for link in CalendarEvent.objects.filter(booking=booking)}
    for link in links.values():
        if link.connection_id not in connections and link.connection.is_live:
            connections[link.connection_id] = link.connection
    calls = 0
    for connection in connections.values():
        link = links.get(connection.pk)
        times = wanted.get(connection.resource_id)
        try:
            calls += _push_one(connection, booking, link, times, now)
        except GrantRevoked as error:
            connection_mark_revoked(connection=connection, error=error, now=now)
    return calls


def _push_one(connection, booking: Booking, link: CalendarEvent | None, times, now: datetime) -> int:
    adapter = adapter_for(connection)
    try:
        if times is None:
            if link is None or link.status in (
                CalendarEvent.Status.DELETED,
                CalendarEvent.Status.DELETED_OUTSIDE,
            ):
                return 0
            adapter.event_delete(our_id=link.our_id, external_id=link.external_id)
            with service_transaction():
                CalendarEvent.objects.filter(pk=link.pk).update(
                    status=CalendarEvent.Status.DELETED, pushed_at=now
                )
                timeline.event_removed(booking, now=now, connection=connection)
            return 1
        starts, ends = times
        if (
            link is not None
            and link.status == CalendarEvent.Status.ACTIVE
            and (link.starts_at, link.ends_at) == times
        ):
            return 0
        our_id = link.our_id if link else our_event_id(f"{settings.SITE_URL}|{connection.pk}|{booking.pk}")
        location = booking.offering.location
        event = OutboundEvent(
            our_id=our_id,
            summary=f"{booking.offering.name}: {booking.customer.name}",
            description=(
                f"Booking {booking.reference} for {booking.customer.name} ({booking.customer.email}).\n"
                f"{settings.SITE_URL}{reverse('admin:booking_booking_change', args=[booking.pk])}"
            ),
            starts_at=starts,
            ends_at=ends,
            time_zone=location.time_zone,
            location=f"{location.name}, {location.address}",
        )
        external_id = adapter.event_put(event, external_id=link.external_id if link else "")
        with service_transaction():
            CalendarEvent.objects.update_or_create(
                connection=connection,
                booking=booking,
                defaults={
                    "our_id": our_id,
                    "external_id": "" if external_id == our_id else external_id,
                    "starts_at": starts,
                    "ends_at": ends,
                    "status": CalendarEvent.Status.ACTIVE,
                    "pushed_at": now,
                },
            )
            timeline.event_pushed(
                booking, now=now, connection=connection, starts_at=starts, created=link is None
            )
        return 1
    finally:
        _keep_credentials(connection, adapter, now)


def calendar_backfill(*, connection_id: int, now: datetime) -> int:
    """After (re)connecting a two-way calendar: put the resource's upcoming bookings in it."""
    connection = CalendarConnection.objects.get(pk=connection_id)
    if connection.mode != CalendarConnection.Mode.TWO_WAY or not connection.is_live:
        return 0
    holders = Allocation.objects.filter(
        resource_id=connection.resource_id,
        is_active=True,
        ends_at__gt=now,
        holder__startswith="booking_item:",
    ).values_list("holder", flat=True)
    item_ids = [int(h.split(":", 1)[1]) for h in holders]
    booking_ids = set(
        BookingItem.objects.filter(pk__in=item_ids, booking__status__in=IN_CALENDAR).values_list(
            "booking_id", flat=True
        )
    )
    return sum(calendar_booking_push(booking_id=pk, now=now) for pk in sorted(booking_ids))


def connection_notify_reconnect(*, connection_id: int, error: str) -> bool:
    """Email the staff member that their calendar stopped syncing, with the link to reconnect it."""
    connection = CalendarConnection.objects.select_related("resource").get(pk=connection_id)
    if connection.status != CalendarConnection.Status.NEEDS_RECONNECT or not connection.notify_email:
        return False
    context = {
        "connection": connection,
        "error": error,
        "reconnect_url": settings.SITE_URL + reverse("calendarsync:connect", args=[connection.pk]),
    }
    send_mail(
        subject=f"Reconnect the calendar of {connection.resource.name}",
        message=render_to_string("calendarsync/email_reconnect.txt", context),
        from_email=None,
        recipient_list=[connection.notify_email],
    )
    return True
