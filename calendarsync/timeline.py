"""One function per calendar event on the timeline, each inside the service's transaction.

Connection events are on the connection; pushes of a booking are on the booking, so its history
shows when it reached (or left) the staff member's calendar.
"""

from datetime import datetime

from core.audit.services import timeline_entry_record


def _record(subject, action: str, now: datetime, acting_user=None, actor: str = "calendar", **data) -> None:
    timeline_entry_record(
        subject=subject,
        action=action,
        now=now,
        acting_user=acting_user,
        actor=getattr(acting_user, "username", None) or actor,
        data=data,
    )


def connection_created(connection, *, now, acting_user=None) -> None:
    _record(
        connection,
        "calendarsync.connection.created",
        now,
        acting_user,
        provider=connection.provider,
        mode=connection.mode,
        resource=connection.resource.name,
    )


def connection_granted(connection, *, now, acting_user=None) -> None:
    _record(connection, "calendarsync.connection.granted", now, acting_user, account=connection.account)


def connection_disconnected(connection, *, now, acting_user=None) -> None:
    _record(connection, "calendarsync.connection.disconnected", now, acting_user)


def connection_revoked(connection, *, now, error: str) -> None:
    _record(connection, "calendarsync.connection.revoked", now, error=error[:500])


def synced(connection, *, now, full: bool, written: int, removed: int, flagged: int) -> None:
    if full or written or removed or flagged:  # an empty incremental sync is not news
        _record(
            connection,
            "calendarsync.synced",
            now,
            full=full,
            written=written,
            removed=removed,
            flagged=flagged,
        )


def event_pushed(booking, *, now, connection, starts_at, created: bool) -> None:
    _record(
        booking,
        "calendarsync.event.created" if created else "calendarsync.event.updated",
        now,
        calendar=str(connection),
        starts_at=starts_at.isoformat(),
    )


def event_removed(booking, *, now, connection) -> None:
    _record(booking, "calendarsync.event.deleted", now, calendar=str(connection))
