"""The calendars `calendarsync.py` syncs from: a year of events as their owners wrote them, the three
providers it writes them to (the Google and Microsoft stand-ins in process, a real Radicale), and the
receiver that notes when each push notification lands.

`Spec` is an event as written (aware times in the owner's zone, or dates for all-day events);
`expected_block` is the busy time it must become in the location's zone; each provider's `expected()`
reads back what its calendar now holds, so the scenario can say whether the database matches.
"""

import contextlib
import queue
import random
import threading
import time as clock
import urllib.parse
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

LOCATION_ZONE = "Europe/Paris"
# Where the events' owners write them from: (zone, share).
ZONES = [
    ("Europe/Paris", 0.5),
    ("America/New_York", 0.2),
    ("Asia/Tokyo", 0.1),
    ("UTC", 0.1),
    ("Australia/Sydney", 0.1),
]
ALL_DAY_SHARE = 0.08
TRANSPARENT_SHARE = 0.12


GOOGLE_CLIENT = "booking.apps.googleusercontent.com"
CALDAV_PASSWORD = "app-password"  # noqa: S105 - Radicale runs with `[auth] type = none`


STAFF_EMAIL = "camille@example.com"


@dataclass
class Spec:
    """One event as its owner wrote it: aware datetimes in the owner's zone, or dates (all day)."""

    start: datetime | date
    end: datetime | date
    busy: bool
    summary: str

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)


def plan_event(rng: random.Random, now: datetime, n: int, *, within_days: int = 364) -> Spec:
    busy = rng.random() >= TRANSPARENT_SHARE
    if rng.random() < ALL_DAY_SHARE:
        first = now.date() + timedelta(days=rng.randint(1, within_days - 3))
        return Spec(first, first + timedelta(days=rng.choice([1, 1, 1, 2, 3])), busy, f"Away {n}")
    zone = ZoneInfo(rng.choices([z for z, _ in ZONES], [w for _, w in ZONES])[0])
    day = now.astimezone(zone).date() + timedelta(days=rng.randint(1, within_days))
    starts = datetime.combine(day, time(rng.randint(7, 20), rng.choice([0, 15, 30, 45])), zone)
    return Spec(starts, starts + timedelta(minutes=rng.choice([15, 30, 45, 60, 90, 120, 180])), busy, f"E{n}")


def moved(spec: Spec, rng: random.Random, now: datetime) -> Spec:
    """The same event some days earlier or later (an all-day one stays all-day), still in the window
    the first sync read (Graph's delta link keeps that window: an event moved out of it is removed)."""
    shift = timedelta(days=rng.randint(1, 20))
    first = spec.start if spec.all_day else spec.start.date()
    if first + shift > now.date() + timedelta(days=364) or (
        first > now.date() + shift and rng.random() < 0.5
    ):
        shift = -shift
    if spec.all_day:
        return Spec(spec.start + shift, spec.end + shift, spec.busy, spec.summary)
    hours = timedelta(hours=rng.randint(-2, 2))
    return Spec(spec.start + shift + hours, spec.end + shift + hours, spec.busy, spec.summary)


def expected_block(spec: Spec) -> tuple[datetime, datetime] | None:
    """The busy time an event should give the staff member: None for free time; all-day events take
    the location's own local days."""
    if not spec.busy:
        return None
    if spec.all_day:
        zone = ZoneInfo(LOCATION_ZONE)
        return datetime.combine(spec.start, time(), zone), datetime.combine(spec.end, time(), zone)
    return spec.start, spec.end


class PushReceiver:
    """SITE_URL for the run: answers Graph's validation handshake, notes when each notification lands."""

    def __init__(self) -> None:
        arrivals: queue.Queue[float] = queue.Queue()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                arrived = clock.perf_counter()
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                if "validationToken" in query:  # Graph: echo it, as text, or no subscription
                    body, status = query["validationToken"].encode(), 200
                else:
                    arrivals.put(arrived)
                    body, status = b"", 202
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args) -> None:
                pass

        self.arrivals = arrivals
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    def drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.arrivals.get_nowait()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class StandInMeter:
    """Counts the requests an in-process stand-in answers and the time it spends answering them."""

    def __init__(self, standin) -> None:
        self.requests, self.seconds = 0, 0.0
        real = standin.dispatch

        def dispatch(request):
            started = clock.perf_counter()
            try:
                return real(request)
            finally:
                self.requests += 1
                self.seconds += clock.perf_counter() - started

        standin.dispatch = dispatch  # the request handler looks it up on the instance


class Provider(ABC):
    """What the bench does to one provider's calendar; subclasses speak to one stand-in or server."""

    name = ""
    has_push = True

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng, self.now = rng, now
        self.specs: dict[str, Spec] = {}  # the calendar's events by the provider's id
        self.meter: StandInMeter | None = None

    @abstractmethod
    def load(self, specs: list[Spec]) -> None: ...

    @abstractmethod
    def create(self, spec: Spec) -> str: ...

    @abstractmethod
    def move(self, event_id: str, spec: Spec) -> None: ...

    @abstractmethod
    def delete(self, event_id: str) -> None: ...

    @abstractmethod
    def connect(self, resource): ...

    @abstractmethod
    def expected(self) -> dict[str, tuple[datetime, datetime]]:
        """The busy time the provider's current events should give, read back from the provider."""

    def stop(self) -> None:  # most providers have nothing to stop
        return None


class InProcessStandIn(Provider):
    """A provider played by one of the project's stand-ins, run in this process and driven through its
    control methods (no HTTP), so the bench can tell the stand-in's own serving time apart."""

    standin = None

    def load(self, specs: list[Spec]) -> None:
        for spec in specs:
            self.create(spec)

    def move(self, event_id: str, spec: Spec) -> None:
        self.standin.move_event(STAFF_EMAIL, event_id, start=spec.start, end=spec.end)
        self.specs[event_id] = spec

    def delete(self, event_id: str) -> None:
        self.standin.delete_event(STAFF_EMAIL, event_id)
        del self.specs[event_id]

    def stop(self) -> None:
        self.standin.stop()


class Google(InProcessStandIn):
    name = "Google Calendar"

    def __init__(self, rng, now) -> None:
        from standins.google_calendar import GoogleCalendarStandIn

        super().__init__(rng, now)
        self.standin = GoogleCalendarStandIn.start(default_email=STAFF_EMAIL)
        self.standin.add_account(STAFF_EMAIL, time_zone=LOCATION_ZONE)
        self.meter = StandInMeter(self.standin)
        self.settings = {
            "GOOGLE_CLIENT_ID": GOOGLE_CLIENT,
            "GOOGLE_CLIENT_SECRET": "secret",
            "GOOGLE_AUTH_URI": self.standin.auth_uri,
            "GOOGLE_TOKEN_URI": self.standin.token_uri,
            "GOOGLE_CALENDAR_API_ENDPOINT": self.standin.api_endpoint,
        }

    def create(self, spec: Spec) -> str:
        extra = {} if spec.busy else {"transparency": "transparent"}
        event = self.standin.create_event(
            STAFF_EMAIL, start=spec.start, end=spec.end, summary=spec.summary, **extra
        )
        self.specs[event["id"]] = spec
        return event["id"]

    def connect(self, resource):
        from calendarsync.services import connection_create

        tokens = self.standin.issue_tokens(STAFF_EMAIL, client_id=GOOGLE_CLIENT)
        credentials = {
            "token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "account": STAFF_EMAIL,
        }
        return connection_create(
            resource=resource,
            provider="google",
            mode="read_only",
            credentials=credentials,
            account=STAFF_EMAIL,
            now=self.now,
        )

    def expected(self) -> dict[str, tuple[datetime, datetime]]:
        wanted = {}
        for event in self.standin.events(STAFF_EMAIL):
            if event.get("transparency") == "transparent":
                continue
            if "date" in event["start"]:
                zone = ZoneInfo(LOCATION_ZONE)
                days = [date.fromisoformat(event[k]["date"]) for k in ("start", "end")]
                wanted[event["id"]] = tuple(datetime.combine(d, time(), zone) for d in days)
            else:
                wanted[event["id"]] = tuple(
                    datetime.fromisoformat(event[k]["dateTime"]) for k in ("start", "end")
                )
        return wanted


class Microsoft(InProcessStandIn):
    name = "Microsoft Graph"

    def __init__(self, rng, now) -> None:
        from standins.microsoft import MicrosoftStandIn

        super().__init__(rng, now)
        self.standin = MicrosoftStandIn.start(default_email=STAFF_EMAIL)
        self.meter = StandInMeter(self.standin)
        self.settings = {
            "MICROSOFT_CLIENT_ID": "booking-app",
            "MICROSOFT_CLIENT_SECRET": "client-secret",
            "MICROSOFT_AUTHORITY": self.standin.authority,
            "MICROSOFT_GRAPH_BASE": self.standin.graph_base,
            "MICROSOFT_CA_BUNDLE": self.standin.ca_cert,
        }

    def create(self, spec: Spec) -> str:
        event = self.standin.create_event(
            STAFF_EMAIL,
            start=spec.start,
            end=spec.end,
            subject=spec.summary,
            show_as="busy" if spec.busy else "free",
        )
        self.specs[event["id"]] = spec
        return event["id"]

    def connect(self, resource):
        from calendarsync.providers.microsoft import auth_flow_finish, auth_flow_start
        from calendarsync.services import connection_create

        flow = auth_flow_start(redirect_uri="http://127.0.0.1/calendar/oauth/callback/")
        credentials = auth_flow_finish(flow=flow, query=self.standin.authorization_response(flow["auth_uri"]))
        return connection_create(
            resource=resource,
            provider="microsoft",
            mode="read_only",
            credentials=credentials,
            account=credentials["account"],
            now=self.now,
        )

    def expected(self) -> dict[str, tuple[datetime, datetime]]:
        wanted = {}
        for event in self.standin.events(STAFF_EMAIL):
            if event.get("showAs") == "free":
                continue
            if event.get("isAllDay"):
                zone = ZoneInfo(LOCATION_ZONE)
                days = [date.fromisoformat(event[k]["dateTime"][:10]) for k in ("start", "end")]
                wanted[event["id"]] = tuple(datetime.combine(d, time(), zone) for d in days)
            else:
                wanted[event["id"]] = tuple(
                    datetime.fromisoformat(event[k]["dateTime"]).replace(
                        tzinfo=ZoneInfo(event[k]["timeZone"])
                    )
                    for k in ("start", "end")
                )
        return wanted


class CalDAV(Provider):
    name = "CalDAV (Radicale)"
    has_push = False
    USER = "camille"

    def __init__(self, rng, now) -> None:
        import caldav
        import requests

        from standins.radicale import radicale

        super().__init__(rng, now)
        self.settings = {}
        self._server_context = radicale()
        self.server = self._server_context.__enter__()
        client = caldav.DAVClient(url=self.server.url, username=self.USER, password=CALDAV_PASSWORD)
        self.calendar_url = str(client.principal().make_calendar(name="Work").url)
        self.http = requests.Session()
        self.http.auth = (self.USER, CALDAV_PASSWORD)
        self.path = urllib.parse.urlsplit(self.calendar_url).path

    def _vcalendar(self, items: list[tuple[str, Spec]]) -> bytes:
        import icalendar

        ical = icalendar.Calendar()
        ical.add("prodid", "-//bench//calendarsync//EN")
        ical.add("version", "2.0")
        for uid, spec in items:
            vevent = icalendar.Event()
            vevent.add("uid", uid)
            vevent.add("dtstamp", datetime.now(tz=UTC))
            vevent.add("dtstart", spec.start)
            vevent.add("dtend", spec.end)
            vevent.add("summary", spec.summary)
            if not spec.busy:
                vevent.add("transp", "TRANSPARENT")
            ical.add_component(vevent)
        ical.add_missing_timezones()
        return ical.to_ical()

    def _put(self, uid: str, spec: Spec) -> None:
        answer = self.http.put(
            f"{self.calendar_url}{uid}.ics",
            data=self._vcalendar([(uid, spec)]),
            headers={"Content-Type": "text/calendar; charset=utf-8"},
        )
        answer.raise_for_status()

    def load(self, specs: list[Spec]) -> None:
        # One PUT of the whole collection (as a calendar import does): Radicale stores one object per
        # UID, named <uid>.ics, in seconds; 5,000 single PUTs would take most of an hour.
        items = [(f"ev{n}", spec) for n, spec in enumerate(specs)]
        answer = self.http.put(
            self.calendar_url,
            data=self._vcalendar(items),
            headers={"Content-Type": "text/calendar; charset=utf-8"},
        )
        answer.raise_for_status()
        self.specs.update({f"{self.path}{uid}.ics": spec for uid, spec in items})

    def create(self, spec: Spec) -> str:
        uid = uuid.uuid4().hex
        self._put(uid, spec)
        self.specs[f"{self.path}{uid}.ics"] = spec
        return f"{self.path}{uid}.ics"

    def move(self, event_id: str, spec: Spec) -> None:
        self._put(event_id.rsplit("/", 1)[1].removesuffix(".ics"), spec)
        self.specs[event_id] = spec

    def delete(self, event_id: str) -> None:
        self.http.delete(f"{self.calendar_url}{event_id.rsplit('/', 1)[1]}").raise_for_status()
        del self.specs[event_id]

    def connect(self, resource):
        from calendarsync.services import connection_create

        return connection_create(
            resource=resource,
            provider="caldav",
            mode="read_only",
            calendar_id=self.calendar_url,
            credentials={
                "url": self.server.url,
                "username": self.USER,
                "password": CALDAV_PASSWORD,
                "account": self.USER,
            },
            account=self.USER,
            now=self.now,
        )

    def expected(self) -> dict[str, tuple[datetime, datetime]]:
        # Radicale is a real server with no control API: the bench's own record of what it put there.
        return {k: block for k, spec in self.specs.items() if (block := expected_block(spec))}

    def stop(self) -> None:
        self._server_context.__exit__(None, None, None)
