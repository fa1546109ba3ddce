"""CalDAV calendars (iCloud, Nextcloud, Fastmail, Radicale …) through the caldav library and icalendar.

Ids: every event is named by the path of its object on the server (`/ana/work/bk1f….ics`), because a
sync-collection report names deleted objects by URL only. Our bookings are stored at
`<calendar>/<our_id>.ics` with `UID:<our_id>` and `X-BOOKING-ID:<our_id>`, so a retried put
overwrites the first one instead of making a second event, and `event_put` returns that path.

A recurring event becomes one ExternalEvent per occurrence in the sync window, named
`<path>#<recurrence id in UTC>` (busy blocks are unique per id). A stateless adapter cannot know which
occurrence ids the caller holds, so an incremental sync that deletes an object or changes a recurring
one answers with the whole window (`full=True`) and still lists the deleted paths in `removed` (for
our own events deleted by the staff member).

CalDAV has no push: `watch` returns None and the caller polls.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse

import caldav
import icalendar
import recurring_ical_events
from caldav.elements import dav
from caldav.lib import error as caldav_error

from calendarsync.providers.base import (
    Changes,
    ExternalEvent,
    GrantRevoked,
    OutboundEvent,
    ProviderError,
    ProviderUnavailable,
    PushChannel,
    SyncTokenExpired,
)
from core.times import machine_moment

TIMEOUT_S = 20
OUR_PROPERTY = "X-BOOKING-ID"
PRODID = "-//Booking platform//CalDAV sync//EN"
WRONG_LOGIN = "The server refused the user name or password"
# caldav's stand-in token for servers without sync-collection (a hash of all ETags); it cannot tell
# what was deleted, so we never hand it out.
FAKE_TOKEN_PREFIX = "fake-"  # noqa: S105 - a marker, not a secret


def _client(*, url: str, username: str, password: str) -> caldav.DAVClient:
    # rate_limit_handle=False: caldav would otherwise sleep inside a Celery task on 429/503; the
    # caller backs off instead (ProviderUnavailable.retry_after).
    return caldav.DAVClient(
        url=url, username=username, password=password, timeout=TIMEOUT_S, rate_limit_handle=False
    )


def _translate(error: Exception) -> ProviderError:
    if isinstance(error, ProviderError):
        return error
    if isinstance(error, caldav_error.RateLimitError):
        return ProviderUnavailable(
            f"The CalDAV server is busy: {error}", retry_after=error.retry_after_seconds
        )
    if isinstance(error, caldav_error.DAVError):
        if dav.ValidSyncToken.tag in error.preconditions:
            return SyncTokenExpired(f"The CalDAV server no longer accepts the sync token: {error}")
        status = error.status or 0
        if isinstance(error, caldav_error.AuthorizationError) or status in (401, 403):
            return GrantRevoked(f"The CalDAV server refused access ({status or 'denied'}): {error.reason}")
        if status >= 500:
            return ProviderUnavailable(f"The CalDAV server failed ({status}): {error.reason}")
        return ProviderError(f"The CalDAV server refused the request ({status or 'error'}): {error}")
    # requests' and niquests' ConnectionError/Timeout are OSErrors, as are socket errors.
    if isinstance(error, OSError):
        return ProviderUnavailable(f"The CalDAV server could not be reached: {error}")
    return ProviderError(f"CalDAV: {error}")


def _path(url: object) -> str:
    """The object's id: its URL path, unquoted, so the server's spelling of an href does not matter."""
    return urllib.parse.unquote(urllib.parse.urlsplit(str(url)).path)


def calendar_discover(*, url: str, username: str, password: str) -> list[tuple[str, str]]:
    """Sign in and list the account's calendars as (calendar URL, display name).

    :raises GrantRevoked: wrong user name or password.
    :raises ProviderUnavailable: the server cannot be reached or failed.
    :raises ProviderError: anything else (not a CalDAV server, for one).
    """
    try:
        with _client(url=url, username=username, password=password) as client:
            found = []
            for calendar in client.principal().calendars():
                name = calendar.get_display_name() or _path(calendar.url).rstrip("/").rsplit("/", 1)[-1]
                found.append((str(calendar.url), str(name)))
            return found
    except caldav_error.AuthorizationError as error:
        raise GrantRevoked(WRONG_LOGIN) from error
    except Exception as error:  # every failure is reduced to the four kinds
        raise _translate(error) from error


class CalDAVAdapter:
    def __init__(self, *, credentials: dict, calendar_id: str) -> None:
        self.credentials = dict(credentials)
        self.credentials_changed = False  # a password never rotates by itself
        self.calendar_id = calendar_id
        self._client = _client(
            url=credentials["url"],
            username=credentials.get("username", ""),
            password=credentials.get("password", ""),
        )
        self._calendar: caldav.Calendar | None = None

    def _cal(self) -> caldav.Calendar:
        if self._calendar is None:
            if self.calendar_id:
                self._calendar = self._client.calendar(url=self.calendar_id)
            else:
                calendars = self._client.principal().calendars()
                if not calendars:
                    raise ProviderError("This CalDAV account has no calendar.")
                self._calendar = calendars[0]
        return self._calendar

    def account(self) -> str:
        return self.credentials.get("username", "")

    # --- inbound ---------------------------------------------------------------------------------

    def changes(self, *, token: str, window_start: dt.datetime, window_end: dt.datetime) -> Changes:
        try:
            return self._changes(token, window_start, window_end)
        except Exception as error:  # every failure is reduced to the four kinds
            raise _translate(error) from error

    def _changes(self, token: str, window_start: dt.datetime, window_end: dt.datetime) -> Changes:
        calendar = self._cal()
        if token.startswith(FAKE_TOKEN_PREFIX):
            raise SyncTokenExpired("The CalDAV server keeps no sync tokens.")
        if not token:
            # The token first, the events second: a change made in between is seen again next time,
            # which is harmless, rather than never.
            return Changes(
                events=self._window(calendar, window_start, window_end),
                token=self._token(calendar.get_objects_by_sync_token(load_objects=False).sync_token),
                full=True,
            )
        # disable_fallback: without it caldav answers a stale token with every object and a made-up
        # token instead of an error, and we could not tell the deletions.
        delta = calendar.get_objects_by_sync_token(sync_token=token, load_objects=True, disable_fallback=True)
        removed, events, needs_window = [], [], bool(delta.deleted_urls)
        for obj in delta:
            data = obj.get_data() if obj.url.canonical() not in delta.deleted_urls else ""
            if not data:  # deleted, or gone between the report and the GET
                removed.append(_path(obj.url))
                needs_window = True
                continue
            ical = icalendar.Calendar.from_ical(data)
            if _recurring(ical):
                needs_window = True
            else:
                events += _external_events(_path(obj.url), ical, window_start, window_end)
        if needs_window:
            events = self._window(calendar, window_start, window_end)
        return Changes(events=events, removed=removed, token=self._token(delta.sync_token), full=needs_window)

    def _window(self, calendar: caldav.Calendar, start: dt.datetime, end: dt.datetime) -> list[ExternalEvent]:
        # Expanded here rather than by caldav (search(expand=True)) so a search and a sync name the
        # occurrences the same way.
        events = []
        for obj in calendar.search(start=start, end=end, event=True):
            data = obj.get_data()
            if data:
                events += _external_events(_path(obj.url), icalendar.Calendar.from_ical(data), start, end)
        return events

    @staticmethod
    def _token(token: object) -> str:
        token = str(token or "")
        return "" if token.startswith(FAKE_TOKEN_PREFIX) else token

    # --- outbound --------------------------------------------------------------------------------

    def event_put(self, event: OutboundEvent, *, external_id: str = "") -> str:
        vevent = icalendar.Event()
        vevent.add("uid", event.our_id)
        vevent.add(OUR_PROPERTY, event.our_id)
        vevent.add("dtstamp", dt.datetime.now(dt.UTC))
        vevent.add("dtstart", machine_moment(event.starts_at))  # UTC, as in the invites: core/times.py
        vevent.add("dtend", machine_moment(event.ends_at))
        vevent.add("summary", event.summary)
        if event.description:
            vevent.add("description", event.description)
        if event.location:
            vevent.add("location", event.location)
        ical = icalendar.Calendar()
        ical.add("prodid", PRODID)
        ical.add("version", "2.0")
        ical.add_component(vevent)
        try:
            calendar = self._cal()
            url = calendar.url.join(urllib.parse.quote(event.our_id, safe="") + ".ics")
            obj = caldav.Event(client=self._client, url=url, parent=calendar)
            # raw_data: stored as given, without caldav bumping SEQUENCE or merging recurrences. No
            # ETag is known, so the PUT is unconditional: a retry or a move overwrites the object.
            obj.save(raw_data=ical.to_ical())
        except Exception as error:  # every failure is reduced to the four kinds
            raise _translate(error) from error
        return _path(url)

    def event_delete(self, *, our_id: str, external_id: str = "") -> None:
        try:
            calendar = self._cal()
            name = urllib.parse.quote(external_id) or urllib.parse.quote(our_id, safe="") + ".ics"
            url = calendar.url.join(name)
            caldav.Event(client=self._client, url=url, parent=calendar).delete()  # a 404 counts as done
        except caldav_error.NotFoundError:
            return
        except Exception as error:  # every failure is reduced to the four kinds
            translated = _translate(error)
            if type(translated) is ProviderError and "404" in str(error):
                return
            raise translated from error

    # --- push ------------------------------------------------------------------------------------

    def watch(
        self, *, address: str, channel_id: str, token: str, ttl: dt.timedelta, now: dt.datetime
    ) -> PushChannel | None:
        return None

    def unwatch(self, channel: PushChannel) -> None:
        return None


# --- iCalendar → ExternalEvent ---------------------------------------------------------------------


def _recurring(ical: icalendar.Calendar) -> bool:
    return any(
        "RRULE" in component or "RDATE" in component or "RECURRENCE-ID" in component
        for component in ical.walk("VEVENT")
    )


def _utc(value: dt.datetime) -> dt.datetime:
    # A floating time (no TZID, no Z) is "the same wall-clock time wherever you are"; we have no zone
    # for the calendar's owner, so it is taken as UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _external_events(
    path: str, ical: icalendar.Calendar, window_start: dt.datetime, window_end: dt.datetime
) -> list[ExternalEvent]:
    """The object's events: a single event whatever its time, occurrences of a series in the window."""
    if not _recurring(ical):
        return [_external(path, component) for component in ical.walk("VEVENT") if "DTSTART" in component]
    occurrences = recurring_ical_events.of(ical, components=["VEVENT"]).between(window_start, window_end)
    return [_external(f"{path}#{_instance_key(component)}", component) for component in occurrences]


def _instance_key(component: icalendar.Event) -> str:
    value = (component.get("RECURRENCE-ID") or component.get("DTSTART")).dt
    if isinstance(value, dt.datetime):
        return _utc(value).strftime("%Y%m%dT%H%M%SZ")
    return value.strftime("%Y%m%d")


def _external(event_id: str, component: icalendar.Event) -> ExternalEvent:
    start = component.decoded("DTSTART")
    if "DTEND" in component:
        end = component.decoded("DTEND")
    elif "DURATION" in component:
        end = start + component.decoded("DURATION")
    elif isinstance(start, dt.datetime):
        end = start  # RFC 5545: a timed event without an end takes no time
    else:
        end = start + dt.timedelta(days=1)  # RFC 5545: a date without an end is that one day
    ours = str(component.get(OUR_PROPERTY, ""))
    common = {
        "id": event_id,
        "busy": str(component.get("TRANSP", "OPAQUE")).upper() != "TRANSPARENT",
        "cancelled": str(component.get("STATUS", "")).upper() == "CANCELLED",
        "summary": str(component.get("SUMMARY", ""))[:200],
        "our_id": str(component.get("UID", "")) if ours else "",
    }
    if isinstance(start, dt.datetime):
        if not isinstance(end, dt.datetime):  # a timed start with a date end: odd, read as midnight
            end = dt.datetime.combine(end, dt.time(), start.tzinfo)
        return ExternalEvent(starts_at=_utc(start), ends_at=_utc(end), **common)
    if isinstance(end, dt.datetime):
        end = end.date()
    return ExternalEvent(
        all_day=True, start_date=start, end_date=max(end, start + dt.timedelta(days=1)), **common
    )
