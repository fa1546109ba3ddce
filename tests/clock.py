"""Run the whole suite as if it were another moment: `--now 2027-03-28T00:30:00Z` (or `TEST_NOW=...`).

Every clock the tests control is moved there, ticking from that moment at the real rate: this test
process (its Celery worker thread, its live server and the in-process stand-ins, with time-machine),
each pytest-xdist worker, and the stand-ins started in child processes (standins/clock.py).
PostgreSQL's own clock is not moved; the product never asks it the time (domain code is handed `now`).

A test that freezes or moves time itself (`time_machine.travel(...)`) still does so inside the moved
suite; its own moment wins while it runs.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
import time_machine

OPTION = "--now"
ENV = "TEST_NOW"


def moment_parse(value: str) -> datetime:
    """An ISO 8601 instant with its offset ("Z" accepted); a naive time names no moment and is refused."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise pytest.UsageError(
            f"{OPTION}/{ENV}: {value!r} is not an ISO 8601 time, e.g. 2027-03-28T00:30:00Z"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise pytest.UsageError(
            f"{OPTION}/{ENV}: {value!r} has no UTC offset; say which instant, e.g. 2027-03-28T00:30:00Z"
        )
    return moment.astimezone(UTC)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        OPTION,
        default=os.environ.get(ENV) or None,
        metavar="ISO_TIME",
        help=f"run every test as if it were this moment, ticking (default: ${ENV}, else the real clock)",
    )


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption(OPTION)
    if not value:
        return
    moment = moment_parse(value)
    # Each xdist worker is a process of its own and runs this too, so each moves its own clock.
    traveller = time_machine.travel(moment, tick=True)
    traveller.start()
    config.stash[_traveller] = traveller


def pytest_unconfigure(config: pytest.Config) -> None:
    traveller = config.stash.get(_traveller, None)
    if traveller is not None:
        traveller.stop()


def pytest_report_header(config: pytest.Config) -> str | None:
    value = config.getoption(OPTION)
    if value:
        return f"clock: moved to {moment_parse(value).isoformat()} (ticking), by {OPTION}/{ENV}"
    return None


_traveller = pytest.StashKey[time_machine.travel]()


def browser_clock_follow(context) -> None:
    """Give a Playwright browser context this process's clock when a test or `--now` moved it.

    Chromium reads the machine's clock; the page scripts (the checkout countdown, the customer's own
    time beside the venue's, the door app's scan times) would otherwise live in another year than
    the server that rendered them. Time flows on in the page from there, at the real rate.
    """
    if time_machine.escape_hatch.is_travelling():
        context.clock.set_system_time(datetime.now(UTC))
