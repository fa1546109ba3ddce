"""Many customers at once, against real PostgreSQL: exactly the right number win, losers get a clear answer.

Each race starts its threads together behind a barrier, and the harness widens the window between
"check" and "write" (a short sleep right after the availability check) so that, without the guards,
the race is lost every time. The negative controls remove the guards (the row locks, and the
database constraint behind them) and show the same races oversell and double-book.
"""

import importlib
import pkgutil
import threading
import time
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.db.models import F

from booking import services
from booking.models import Booking, BookingStatus
from booking.services import CapacityGone, TicketRequest, booking_confirm, booking_expire, booking_reschedule
from core.errors import ApplicationError
from inventory import capacity, locks
from inventory.locks import CapacityBusy
from inventory.models import Allocation, CapacityCounter
from tests.booking.helpers import NOW, at, hold_places, hold_slot, total_counter
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = 0.05  # seconds between a passed check and the write, in every racing thread
BUSY_RETRIES = 3


def race(n, attempt):
    """Run attempt(i) in n threads started together; return each outcome (a result or the exception)."""
    barrier = threading.Barrier(n)
    outcomes = [None] * n

    def run(i):
        try:
            barrier.wait()
            for _ in range(BUSY_RETRIES):
                try:
                    outcomes[i] = attempt(i)
                    break
                except CapacityBusy as error:
                    # Waited longer than lock_timeout behind the others (a starved thread on a busy
                    # machine): the page says "try again", and the customer does.
                    outcomes[i] = error
        except Exception as error:  # noqa: BLE001 - the outcome under test
            outcomes[i] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def tally(outcomes):
    """What each customer was told: 'booked', an error code a page can explain, or 'CRASH: <type>'."""
    kinds = Counter()
    for outcome in outcomes:
        if isinstance(outcome, Booking):
            kinds["booked"] += 1
        elif isinstance(outcome, ApplicationError):
            kinds[outcome.code] += 1
        else:
            kinds[f"CRASH: {type(outcome).__name__}"] += 1
    return kinds


@contextmanager
def counters_locked_elsewhere(session, then=None):
    """Another transaction holds the session's counters for the length of the block; it runs *then*
    (its own change to them) once the block ends, and commits."""
    holding, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                locks.lock_session_counters(session_ids=[session.pk])
                holding.set()
                release.wait(10)
                if then is not None:
                    then()
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        yield
    finally:
        release.set()
        holder.join()


@pytest.fixture
def slow_checks(monkeypatch):
    """Every thread pauses after its availability check passes, so the threads overlap there."""
    check, slots = capacity.session_places_check, capacity.appointment_slots

    def check_then_pause(**kwargs):
        check(**kwargs)
        time.sleep(WINDOW)

    def slots_then_pause(**kwargs):
        found = slots(**kwargs)
        time.sleep(WINDOW)
        return found

    monkeypatch.setattr(capacity, "session_places_check", check_then_pause)
    monkeypatch.setattr(capacity, "appointment_slots", slots_then_pause)


# --- counted places -----------------------------------------------------------------------------


def test_the_last_places_of_a_class_go_to_exactly_that_many_customers(free_class, slow_checks):
    outcomes = race(12, lambda i: hold_places(free_class["offering"], free_class["session"], 1))
    assert tally(outcomes) == {"booked": 5, "sold_out": 7}
    assert (total_counter(free_class["session"]).sold, Booking.objects.count()) == (5, 5)


def test_mixed_quantities_never_exceed_the_capacity(yoga, slow_checks):
    outcomes = race(10, lambda i: hold_places(yoga["offering"], yoga["session"], 1 + i % 3))
    booked = sum(o.items.count() for o in outcomes if isinstance(o, Booking))
    assert set(tally(outcomes)) <= {"booked", "sold_out"}
    assert booked == total_counter(yoga["session"]).held <= 10
    assert booked >= 8  # only a request bigger than what is left is turned away


def test_the_last_seat_goes_to_exactly_one_customer(concert, slow_checks):
    seat = concert["seats"]["A1"].pk
    outcomes = race(
        8,
        lambda i: hold_places(
            concert["offering"],
            concert["session"],
            tickets=[TicketRequest(concert["adult"].pk, seat_id=seat)],
        ),
    )
    assert tally(outcomes) == {"booked": 1, "seat_taken": 7}


# --- time on a resource -------------------------------------------------------------------------


def test_one_stylist_slot_goes_to_exactly_one_customer(salon, slow_checks):
    ana = {salon["cut"].requirements.get().pk: salon["ana"].pk}
    outcomes = race(8, lambda i: hold_slot(salon["cut"], at(10), preferred=ana))
    assert tally(outcomes) == {"booked": 1, "slot_taken": 7}


def test_overlapping_slots_only_through_their_buffers_do_not_both_win(salon, slow_checks):
    ana = {salon["cut"].requirements.get().pk: salon["ana"].pk}
    starts = [at(10), at(11)]  # 10:00–11:00 keeps a 15-minute buffer to 11:15: 11:00 overlaps it
    outcomes = race(8, lambda i: hold_slot(salon["cut"], starts[i % 2], preferred=ana))
    assert tally(outcomes) == {"booked": 1, "slot_taken": 7}


def test_any_available_stylist_serves_two_customers_at_the_same_time_and_no_more(salon, slow_checks):
    outcomes = race(8, lambda i: hold_slot(salon["cut"], at(10)))
    assert tally(outcomes) == {"booked": 2, "slot_taken": 6}
    assert {a.resource for a in Allocation.objects.filter(is_active=True)} == {salon["ana"], salon["bob"]}


def test_a_room_shared_by_two_offerings_is_never_double_booked(salon, slow_checks):
    offerings = [salon["facial"], salon["massage"]]
    outcomes = race(8, lambda i: hold_slot(offerings[i % 2], at(14)))
    assert tally(outcomes) == {"booked": 1, "slot_taken": 7}


# --- changes racing each other ------------------------------------------------------------------


def test_a_booking_that_waited_for_the_places_counts_what_the_one_before_it_changed(yoga):
    """A booking taken in one guarded statement that had to wait for the counter lock checks and adds
    to the row as the other transaction left it (PostgreSQL re-reads it after the wait), never to the
    row as it was when the statement began: a lost update here is an oversell later."""
    session = yoga["session"]
    hold_places(yoga["offering"], session, 4)
    hold_places(yoga["offering"], session, 2)

    def giving_four_back():
        CapacityCounter.objects.filter(session=session).update(held=F("held") - 4)

    mine = []
    # it gives them back once my booking waits for the lock, with its view of the row
    with counters_locked_elsewhere(session, then=giving_four_back):
        waiting = threading.Thread(
            target=lambda: (mine.append(hold_places(yoga["offering"], session, 3)), connections.close_all())
        )
        waiting.start()

        def lock_waits():
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                return cursor.fetchone()[0]

        assert wait_until(lock_waits)  # my booking is queued behind the other transaction
    waiting.join(30)
    assert isinstance(mine[0], Booking)
    assert total_counter(session).held == 2 + 3


def test_a_reschedule_racing_a_new_booking_for_the_last_place(yoga, slow_checks):
    mine = booking_confirm(booking=hold_places(yoga["offering"], yoga["session"], 1), now=NOW)
    for _ in range(3):
        hold_places(yoga["offering"], yoga["later"], 3)  # one place left in the later session

    def attempt(i):
        if i == 0:
            return booking_reschedule(booking=mine, new_session=yoga["later"], now=NOW, by_customer=True)
        return hold_places(yoga["offering"], yoga["later"], 1)

    outcomes = race(4, attempt)
    assert tally(outcomes) == {"booked": 1, "sold_out": 3}
    mine.refresh_from_db()
    moved = mine.session_id == yoga["later"].pk
    assert total_counter(yoga["later"]).held + total_counter(yoga["later"]).sold == 10
    assert total_counter(yoga["session"]).sold == (0 if moved else 1)  # moved whole, or not at all


def test_expiry_racing_confirmation_leaves_one_consistent_outcome(yoga, slow_checks):
    for _round in range(4):
        CapacityCounter.objects.all().update(held=0, sold=0)
        Booking.objects.all().delete()
        held = hold_places(yoga["offering"], yoga["session"], 4)
        for _ in range(3):
            booking_confirm(booking=hold_places(yoga["offering"], yoga["session"], 2), now=NOW)
        late = NOW + timedelta(minutes=11)  # the hold has run out; a payment arrives just now

        def attempt(i, held=held, late=late):
            if i == 0:
                return booking_confirm(booking=held, now=late)
            if i == 1:
                return booking_expire(booking_id=held.pk, now=late)
            return hold_places(yoga["offering"], yoga["session"], 4, now=late)

        outcomes = race(3, attempt)
        held.refresh_from_db()
        newcomer = outcomes[2]
        if held.status == BookingStatus.CONFIRMED:
            assert isinstance(newcomer, ApplicationError) and newcomer.code == "sold_out"
        else:
            assert isinstance(outcomes[0], CapacityGone) and isinstance(newcomer, Booking)
        counter = total_counter(yoga["session"])
        assert counter.held + counter.sold == 10
        assert services.capacity_reconcile(now=late) == []


# --- negative controls: take the guards away and the same races are lost ------------------------


SERVICE_MODULES = [
    importlib.import_module(f"booking.services.{info.name}")
    for info in pkgutil.iter_modules(services.__path__)
]


@pytest.fixture
def no_locks(monkeypatch):
    """Replace the row locks with plain reads: check-then-write without anyone waiting."""

    def read_counters(*, session_ids):
        by_session = {}
        for row in CapacityCounter.objects.filter(session_id__in=session_ids).order_by("pk"):
            by_session.setdefault(row.session_id, []).append(row)
        return by_session

    def take_unguarded(*, session_id, known, demand, sold):
        """The one-statement take as separate read, check and write, with nobody waiting."""
        counters = read_counters(session_ids=[session_id])[session_id]
        if any(demand.get(c.pk, 0) > c.capacity - c.held - c.sold for c in counters):
            return counters
        time.sleep(WINDOW)
        field = "sold" if sold else "held"
        for pk, n in demand.items():
            CapacityCounter.objects.filter(pk=pk).update(**{field: F(field) + n})
        return None

    for module in SERVICE_MODULES:  # everywhere the booking services lock capacity
        if hasattr(module, "lock_session_counters"):
            monkeypatch.setattr(module, "lock_session_counters", read_counters)
        if hasattr(module, "session_counters_take"):
            monkeypatch.setattr(module, "session_counters_take", take_unguarded)
        if hasattr(module, "lock_resource_units"):
            monkeypatch.setattr(module, "lock_resource_units", lambda *, resource_ids: [])


@pytest.fixture
def without_constraint():
    """Drop a database constraint for one test and put it back afterwards."""
    dropped = []

    def drop(model, name):
        constraint = next(c for c in model._meta.constraints if c.name == name)
        with connection.schema_editor() as editor:
            editor.remove_constraint(model, constraint)
        dropped.append((model, constraint))

    yield drop
    CapacityCounter.objects.update(held=0, sold=0)
    Allocation.objects.update(is_active=False)
    for model, constraint in dropped:
        with connection.schema_editor() as editor:
            editor.add_constraint(model, constraint)


def test_negative_control_without_locks_the_check_constraint_still_refuses_to_oversell(
    free_class, slow_checks, no_locks
):
    outcomes = race(12, lambda i: hold_places(free_class["offering"], free_class["session"], 1))
    assert total_counter(free_class["session"]).sold <= 5
    assert any(kind.startswith("CRASH") for kind in tally(outcomes)), "losers now get a database error"


def test_negative_control_without_locks_or_check_constraint_a_class_is_oversold(
    free_class, slow_checks, no_locks, without_constraint
):
    without_constraint(CapacityCounter, "counter_within_capacity")
    race(12, lambda i: hold_places(free_class["offering"], free_class["session"], 1))
    assert total_counter(free_class["session"]).sold > 5


def test_negative_control_without_locks_or_exclusion_constraint_a_stylist_is_double_booked(
    salon, slow_checks, no_locks, without_constraint
):
    without_constraint(Allocation, "allocation_no_double_booking")
    ana = {salon["cut"].requirements.get().pk: salon["ana"].pk}
    outcomes = race(8, lambda i: hold_slot(salon["cut"], at(10), preferred=ana))
    assert tally(outcomes)["booked"] > 1
    assert Allocation.objects.filter(resource=salon["ana"], is_active=True).count() > 1


def test_a_booking_waiting_too_long_for_the_lock_is_told_to_try_again(free_class, monkeypatch):
    monkeypatch.setattr(locks, "LOCK_TIMEOUT_MS", 300)
    with counters_locked_elsewhere(free_class["session"]):
        started = time.monotonic()
        with pytest.raises(locks.CapacityBusy, match="Please try again"):
            hold_places(free_class["offering"], free_class["session"], 1)
        assert time.monotonic() - started < 5
    assert not Booking.objects.exists()
