"""What every calendar provider adapter offers, in provider-neutral terms.

An adapter is made from a connection's stored credentials (a dict, decrypted by the caller) and
settings; it never reads or writes the database. When the provider refreshes or rotates tokens the
adapter puts the new ones in `adapter.credentials` and sets `adapter.credentials_changed`, and the
caller stores them.

Errors are reduced to four kinds so the sync and push code can act the same for every provider:

- `GrantRevoked`: the user revoked access or the grant expired (`invalid_grant`, AADSTS…, 401 on
  CalDAV): nothing will work until a person reconnects.
- `SyncTokenExpired`: the incremental token is no longer accepted (Google 410, a Graph delta link
  that expired, an invalid CalDAV sync token): start again with a full sync.
- `ProviderUnavailable`: 429, 5xx, timeouts, refused connections: try again later with back-off.
  `retry_after` is the provider's hint in seconds, when it gave one.
- `ProviderError`: anything else the provider refused (a bug of ours or odd data): not retried blindly.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Protocol


class ProviderError(Exception):
    """The provider refused the request for a reason retrying will not fix."""


class GrantRevoked(ProviderError):
    """Access was revoked or expired; a person has to reconnect the calendar."""


class SyncTokenExpired(ProviderError):
    """The incremental sync token is stale; do a full sync."""


class ProviderUnavailable(ProviderError):
    """Rate-limited or down (429, 5xx, network); retry later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ExternalEvent:
    """One event in the connected calendar, as the availability engine needs it.

    `starts_at`/`ends_at` are aware datetimes (UTC). An all-day event has `all_day` set and its dates
    in `start_date`/`end_date` (end exclusive, as the providers give it); the caller places the days
    in the resource's own time zone, so `starts_at`/`ends_at` are then None.
    `busy` is False for events marked free/transparent (Google `transparency: transparent`, Graph
    `showAs: free`, iCalendar `TRANSP:TRANSPARENT`); they take no time.
    `cancelled` events are deletions reported by an incremental sync.
    `our_id` is the id we chose when we created the event from a booking (Google event id, Graph
    `transactionId`/singleValueExtendedProperty or the event's own id we stored, CalDAV UID), else "".
    """

    id: str
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    all_day: bool = False
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    busy: bool = True
    cancelled: bool = False
    summary: str = ""
    our_id: str = ""


@dataclass
class Changes:
    """What changed since the last sync.

    `full` is True when this is the whole calendar (no token was given or it had expired): events of
    this calendar the caller knows and that are not listed here are gone. `removed` lists ids deleted
    since the token (providers that report deletions as cancelled events put them in `events` with
    `cancelled=True` instead; callers treat both the same). `token` is what to pass next time.
    """

    events: list[ExternalEvent] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    token: str = ""
    full: bool = False


def our_event_id(seed: str) -> str:
    """A stable id for the event of `seed` that every provider accepts: a Google event id (base32hex,
    5–1024 characters), a Graph transactionId, a CalDAV UID and object name."""
    return "bk" + uuid.uuid5(uuid.NAMESPACE_URL, seed).hex  # hex digits are base32hex digits too


@dataclass(frozen=True)
class OutboundEvent:
    """A booking as an event in the staff member's or room's calendar.

    `our_id` is chosen by us and stable for (booking, resource, connection), so a retried create
    finds the first event instead of making a second one.
    """

    our_id: str
    summary: str
    description: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    time_zone: str
    location: str = ""


@dataclass(frozen=True)
class PushChannel:
    """A push subscription: Google `events.watch` channel or Graph subscription."""

    id: str
    token: str  # Google channel token / Graph clientState, checked on every notification
    resource_id: str  # Google resourceId (needed to stop it); Graph: the subscription id again
    expires_at: dt.datetime


class CalendarAdapter(Protocol):
    credentials: dict
    credentials_changed: bool

    def account(self) -> str:
        """The account's name or email, shown to staff."""

    def changes(self, *, token: str, window_start: dt.datetime, window_end: dt.datetime) -> Changes:
        """Events changed since `token`, or every event in the window when `token` is empty.

        Raises SyncTokenExpired when the token is stale (the caller retries with an empty token).
        """

    def event_put(self, event: OutboundEvent, *, external_id: str = "") -> str:
        """Create the event, or update it when it exists (`external_id`: the provider's id from an earlier
        put, if it differs from `our_id`). Idempotent. Returns the provider's id for the event."""

    def event_delete(self, *, our_id: str, external_id: str = "") -> None:
        """Delete the event; an event already gone is not an error."""

    def watch(
        self, *, address: str, channel_id: str, token: str, ttl: dt.timedelta, now: dt.datetime
    ) -> PushChannel | None:
        """Ask the provider to push changes to `address` for `ttl` from `now` (or as long as it allows);
        None when the provider has no push (CalDAV)."""

    def unwatch(self, channel: PushChannel) -> None:
        """Stop a push channel; one already gone is not an error."""
