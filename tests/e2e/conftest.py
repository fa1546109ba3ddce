"""Browser fixtures: one headless Chromium for consecutive browser tests, a page per test, screenshots.

Playwright's sync API keeps an asyncio event loop marked running in the test's thread while it is
started; Django then refuses ORM calls from that thread (SynchronousOnlyOperation) and would give it
other connection objects. So the browser is started on demand, `DJANGO_ALLOW_ASYNC_UNSAFE` is set
only while it runs, the thread keeps its own connections, and all of it is undone as soon as the
next test is not a browser test (under pytest-xdist other tests share the process).

Every page reports what a user would notice as broken: an uncaught JavaScript error or a 5xx answer
from the site fails the test, and a failed test leaves a screenshot of the page it was on.
"""

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.clock import browser_clock_follow
from tests.e2e.business import Business, business_build

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
VENUE_ZONE = "Europe/London"  # the venues' zone: the customer's clock agrees with the venue's
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000
_ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


class Chromium:
    """One browser shared by consecutive browser tests, started when first needed."""

    def __init__(self) -> None:
        self._playwright = None
        self._browser: Browser | None = None
        self._saved_env: str | None = None

    def browser(self) -> Browser:
        if self._browser is not None and not self._browser.is_connected():  # it crashed: start again
            self.stop()
        if self._browser is None:
            self._saved_env = os.environ.get(_ASYNC_UNSAFE)
            os.environ[_ASYNC_UNSAFE] = "true"  # the test thread runs Playwright's loop and uses the ORM
            wrappers = {alias: connections[alias] for alias in connections}
            self._playwright = sync_playwright().start()
            # With a loop marked running, Django keeps this thread's connections in a separate
            # (contextvar) store, and would open a second connection lacking the test database's
            # set-up (e.g. serialized_rollback's contents). One thread, one connection.
            for alias, wrapper in wrappers.items():
                connections[alias] = wrapper
            self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        return self._browser

    def stop(self) -> None:
        if self._playwright is None:
            return
        try:
            if self._browser is not None and self._browser.is_connected():
                self._browser.close()
        finally:
            self._playwright.stop()
            self._browser = self._playwright = None
            if self._saved_env is None:
                os.environ.pop(_ASYNC_UNSAFE, None)
            else:
                os.environ[_ASYNC_UNSAFE] = self._saved_env


_chromium = Chromium()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    # After the test's own fixtures (and its database flush) are torn down: close the browser unless
    # the next test in this process wants it too.
    result = yield
    if nextitem is None or nextitem.get_closest_marker("browser") is None:
        _chromium.stop()
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.e2e_failed = report.failed
    return report


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    """The session's browser (kept across consecutive browser tests, closed at the end)."""
    yield _chromium
    _chromium.stop()


@pytest.fixture
def browser(chromium) -> Browser:
    return chromium.browser()


@pytest.fixture(autouse=True)
def site_url(settings, live_server) -> str:
    """Links in emails point at this test's live server (whose requests are counted, see above)."""
    global _in_flight
    server = live_server.thread.httpd
    if not isinstance(server.get_app(), RequestsInFlight):
        _in_flight = RequestsInFlight(server.get_app())
        server.set_app(_in_flight)
    settings.SITE_URL = live_server.url
    return live_server.url


def _test_name(request) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)


class RequestsInFlight:
    """Wraps the live server's WSGI app to count the requests it is handling.

    A page that polls (the door page every few seconds) can leave a request running when its browser
    context closes; the test's database flush (TRUNCATE) would then deadlock with it, or the request
    would reach the database after the test, when access is blocked. The body is read, and the
    response closed (Django's request_finished: connections closed), before the request counts as done.
    """

    def __init__(self, app) -> None:
        self.app = app
        self.count = 0
        self.changed = threading.Condition()

    def __call__(self, environ, start_response):
        with self.changed:
            self.count += 1
        try:
            result = self.app(environ, start_response)
            try:
                return list(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        finally:
            with self.changed:
                self.count -= 1
                self.changed.notify_all()

    def wait_idle(self, timeout: float, quiet: float = 0.2) -> None:
        """Until nothing has run for `quiet` seconds (a request can arrive just after another ends)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while time.monotonic() < deadline:
                if self.count == 0 and not self.changed.wait(quiet):
                    return
                if self.count:
                    self.changed.wait(0.05)


_in_flight: RequestsInFlight | None = None


def site_requests_wait_finished(timeout: float = 10.0) -> None:
    """Wait until the live server has finished every request the closed pages started."""
    if _in_flight is not None:
        _in_flight.wait_idle(timeout)


@pytest.fixture
def open_page(browser, live_server, request) -> Iterator[Callable[..., Page]]:
    """Open a page in a fresh browser context (own cookies) on the live server, desktop or phone sized.

    Each page fails the test on an uncaught script error, anything the Content-Security-Policy blocked,
    or a 5xx from the site, and is screenshotted if the test failed.
    """
    contexts = []
    problems: list[str] = []
    for stale in SCREENSHOTS.glob(f"{_test_name(request)}-*.png"):  # from an earlier run of this test
        stale.unlink()

    def open_(*, phone: bool = False, timezone_id: str = VENUE_ZONE) -> Page:
        options = {"viewport": PHONE if phone else DESKTOP}
        if phone:
            options.update(is_mobile=True, has_touch=True, device_scale_factor=2)
        context = browser.new_context(
            base_url=live_server.url, timezone_id=timezone_id, locale="en-GB", **options
        )
        context.set_default_timeout(TIMEOUT_MS)
        browser_clock_follow(context)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"script error on {page.url}: {error}"))
        # Chromium reports each thing the Content-Security-Policy blocked (in any frame) on the console.
        page.on(
            "console",
            lambda message: (
                problems.append(f"CSP violation on {page.url}: {message.text}")
                if "Content Security Policy" in message.text
                else None
            ),
        )
        page.on(
            "response",
            lambda response: (
                problems.append(f"{response.status} from {response.url}")
                if response.status >= 500 and response.url.startswith(live_server.url)
                else None
            ),
        )
        return page

    expect.set_options(timeout=TIMEOUT_MS)
    yield open_
    if getattr(request.node, "e2e_failed", False):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for n, context in enumerate(contexts):
            for m, page in enumerate(context.pages):
                page.screenshot(
                    path=SCREENSHOTS / f"{_test_name(request)}-failure-{n}{m}.png", full_page=True
                )
    for context in contexts:
        context.close()
    site_requests_wait_finished()
    assert not problems, "the site broke in the browser:\n" + "\n".join(problems)


@pytest.fixture
def page(open_page) -> Page:
    """A desktop-sized page in the venue's time zone."""
    return open_page()


@pytest.fixture
def shot(request) -> Callable[[Page, str], Path]:
    """Save a full-page screenshot as test-artifacts/screenshots/<test-name>-<step>.png (CI keeps them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Page, step: str) -> Path:
        path = SCREENSHOTS / f"{_test_name(request)}-{step}.png"
        page.screenshot(path=path, full_page=True)
        return path

    return take


@pytest.fixture
def business(transactional_db) -> Business:
    """A salon, two yoga classes and a seated concert, bookable from now (see business.py)."""
    return business_build(now=timezone.now())
