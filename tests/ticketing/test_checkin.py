"""Check-in at the door: what staff see for every kind of code, and how scans from offline phones merge.

Online answers come from `scans_record` (what /door/api/.../scan calls); offline phones upload
their queued scans later through the same service, and the server replays each ticket's scans in
the order they happened: the first entry wins, a later one the phone let in is flagged.
"""

import base64
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connections

from booking.services import booking_cancel
from tests.booking.helpers import NOW, hold_places
from tests.ticketing.helpers import adults, door_list, paid_tickets, scan, standing
from ticketing import signing
from ticketing.models import CheckInState, Scan
from ticketing.selectors import checkin_counts, checkin_manifest, public_key_of_session
from ticketing.services import ScanReport, scans, scans_record, tickets_sync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def night(concert):
    """A paid booking of two stalls seats and one standing ticket, and the door's list."""
    booking, seated = paid_tickets(concert["offering"], concert["session"], tickets=adults(concert, 2))
    _, [stand] = paid_tickets(concert["offering"], concert["session"], tickets=standing(concert, 1))
    return {
        **concert,
        "booking": booking,
        "ana": seated[0],
        "ben": seated[1],
        "stand": stand,
        "list": door_list(concert["session"]),
        "doors_open": concert["session"].starts_at - timedelta(minutes=45),
    }


def altered(payload: str) -> str:
    """The same code with one character of the signed part changed (a hand-edited screenshot)."""
    prefix, message, signature = payload.split(".")
    swapped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    return f"{prefix}.{message}.{swapped}"


def forged(ticket_id: int, session_id: int) -> str:
    """A well-formed code for a real ticket id, signed with somebody else's key."""
    private, _ = signing.new_key_pair()
    return signing.sign(private_key=private, ticket_id=ticket_id, session_id=session_id)


def test_a_valid_ticket_is_let_in_once_and_then_shows_when_and_where(night):
    first = scan(night["list"], night["ana"].payload, at=night["doors_open"])
    assert first.scan.result == "valid" and first.ticket.holder_name == night["ana"].holder_name
    assert first.ticket.seat.label == night["ana"].seat.label

    again = scan(night["list"], night["ana"].payload, at=night["doors_open"] + timedelta(minutes=5))
    assert again.scan.result == "already_in" and not again.scan.conflict
    assert again.first_entry.pk == first.scan.pk
    assert checkin_counts(checkin_list=night["list"]) | {} == {
        "admitted": 1,
        "inside": 1,
        "expected": 3,
        "conflicts": 0,
    }


def test_a_typed_code_works_like_the_qr_code(night):
    typed = f" {night['ben'].code[:5].lower()}-{night['ben'].code[5:]} "
    assert scan(night["list"], typed, at=night["doors_open"]).scan.result == "valid"


@pytest.mark.parametrize("kind", ["forged", "altered", "garbage", "unknown typed code"])
def test_codes_that_are_not_genuine_are_refused(night, kind):
    ana = night["ana"]
    raw = {
        "forged": forged(ana.pk, ana.session_id),
        "altered": altered(ana.payload),
        "garbage": "https://example.com/win-a-prize",
        "unknown typed code": "ZZZZ999999",
    }[kind]
    outcome = scan(night["list"], raw, at=night["doors_open"])
    assert outcome.scan.result == "invalid" and outcome.ticket is None
    assert not CheckInState.objects.filter(ticket=ana).exists()  # the real ticket is untouched


def test_door_phones_can_tell_forged_and_altered_codes_without_the_server(night):
    """What a phone holds offline (the manifest's public key) is enough to refuse them."""
    manifest = checkin_manifest(checkin_list=night["list"], modified_since=None, now=night["doors_open"])
    key = base64.b64decode(manifest["public_key"])
    ana = night["ana"]
    assert signing.verify(payload=ana.payload, public_key=key) == (ana.pk, ana.session_id)
    for bad in (forged(ana.pk, ana.session_id), altered(ana.payload)):
        with pytest.raises(signing.BadPayload):
            signing.verify(payload=bad, public_key=key)


def test_a_cancelled_ticket_is_refused_and_listed_as_revoked_for_offline_phones(night):
    booking_cancel(booking=night["booking"], now=NOW, by_customer=True)
    tickets_sync(booking_id=night["booking"].pk, now=NOW, reason="cancelled")
    assert scan(night["list"], night["ana"].payload, at=night["doors_open"]).scan.result == "revoked"
    rows = {
        t["id"]: t
        for t in checkin_manifest(checkin_list=night["list"], modified_since=None, now=night["doors_open"])[
            "tickets"
        ]
    }
    assert rows[night["ana"].pk]["status"] == "revoked" and rows[night["stand"].pk]["status"] == "valid"


def test_a_ticket_for_another_night_says_which(night, concert):
    from tests.inventory import factories as make

    other = make.session(
        offering=concert["offering"], starts_at=concert["session"].starts_at + timedelta(days=1), now=NOW
    )
    _, [ticket] = paid_tickets(concert["offering"], other, tickets=standing(concert, 1))
    outcome = scan(night["list"], ticket.payload, at=night["doors_open"])
    assert outcome.scan.result == "wrong_session" and outcome.ticket.session == other


def test_an_entrance_for_the_stalls_does_not_admit_standing_tickets(night):
    stalls_door = door_list(night["session"])
    stalls_door.zones.set([night["stalls"]])
    assert scan(stalls_door, night["stand"].payload, at=night["doors_open"]).scan.result == "not_on_list"
    assert scan(stalls_door, night["ana"].payload, at=night["doors_open"]).scan.result == "valid"


def test_too_early_is_not_yet_valid(night):
    early = night["session"].starts_at - timedelta(hours=3)
    assert scan(night["list"], night["ana"].payload, at=early).scan.result == "not_yet_valid"
    assert scan(night["list"], night["ana"].payload, at=night["doors_open"]).scan.result == "valid"


def test_an_unpaid_ticket_is_flagged_and_staff_can_let_them_in_anyway(concert):
    _, [ticket] = paid_tickets(
        concert["offering"], concert["session"], tickets=adults(concert, 1), paid=False
    )
    clist = door_list(concert["session"])
    when = concert["session"].starts_at - timedelta(minutes=20)
    assert scan(clist, ticket.payload, at=when).scan.result == "unpaid"
    let_in = scan(clist, ticket.payload, at=when + timedelta(seconds=30), override=True)
    assert let_in.scan.result == "valid" and let_in.scan.override


def test_exits_and_reentry_follow_the_lists_rules(night):
    clist = night["list"]
    clist.count_exits = clist.allow_reentry = True
    clist.save()
    t0, ana = night["doors_open"], night["ana"].payload
    assert scan(clist, ana, at=t0).scan.result == "valid"
    assert scan(clist, ana, at=t0 + timedelta(minutes=30), direction="exit").scan.result == "exited"
    assert checkin_counts(checkin_list=clist)["inside"] == 0
    assert scan(clist, ana, at=t0 + timedelta(minutes=40)).scan.result == "valid"
    assert scan(clist, ana, at=t0 + timedelta(minutes=41)).scan.result == "already_in"

    clist.allow_reentry = False
    clist.save()
    ben = night["ben"].payload
    scan(clist, ben, at=t0)
    scan(clist, ben, at=t0 + timedelta(minutes=5), direction="exit")
    assert scan(clist, ben, at=t0 + timedelta(minutes=10)).scan.result == "already_in"


def report(raw, at, *, shown="valid", id=None):
    return ScanReport(id=id or uuid.uuid4(), raw=raw, scanned_at=at, offline=True, shown_result=shown)


def test_the_same_ticket_on_two_offline_phones_is_a_conflict_after_sync(night):
    t0, ana = night["doors_open"], night["ana"].payload
    north = [report(ana, t0 + timedelta(minutes=2))]
    south = [report(ana, t0 + timedelta(minutes=1))]  # earlier, but uploaded later
    [n] = scans_record(checkin_list=night["list"], reports=north, device=None, now=t0 + timedelta(minutes=10))
    assert n.scan.result == "valid"
    [answer] = scans_record(
        checkin_list=night["list"], reports=south, device=None, now=t0 + timedelta(minutes=11)
    )
    assert answer.scan.result == "valid"  # the phone that was first hears it was first

    north_scan, south_scan = Scan.objects.get(pk=north[0].id), Scan.objects.get(pk=south[0].id)
    assert south_scan.result == "valid" and not south_scan.conflict  # first by time wins
    assert (
        north_scan.result == "already_in" and north_scan.conflict and north_scan.conflict_with == south_scan
    )
    assert checkin_counts(checkin_list=night["list"])["conflicts"] == 1
    state = CheckInState.objects.get(ticket=night["ana"])
    assert state.admitted_scan == south_scan


def test_an_online_admission_after_an_earlier_offline_one_is_flagged_too(night):
    t0, ana = night["doors_open"], night["ana"].payload
    online = scan(night["list"], ana, at=t0 + timedelta(minutes=5), shown="valid")
    assert online.scan.result == "valid"
    scans_record(
        checkin_list=night["list"], reports=[report(ana, t0)], device=None, now=t0 + timedelta(minutes=9)
    )
    online.scan.refresh_from_db()
    assert online.scan.result == "already_in" and online.scan.conflict


def test_uploading_the_same_batch_twice_changes_nothing(night):
    t0 = night["doors_open"]
    batch = [report(night["ana"].payload, t0), report(night["ben"].payload, t0 + timedelta(seconds=20))]
    first = scans_record(
        checkin_list=night["list"], reports=batch, device=None, now=t0 + timedelta(minutes=5)
    )
    again = scans_record(
        checkin_list=night["list"], reports=batch, device=None, now=t0 + timedelta(minutes=6)
    )
    assert [o.scan.result for o in first] == [o.scan.result for o in again] == ["valid", "valid"]
    assert Scan.objects.count() == 2
    assert {s.received_at for s in Scan.objects.all()} == {t0 + timedelta(minutes=5)}


def test_a_revocation_after_an_offline_scan_does_not_undo_that_entry(night):
    """The phone was right when it let her in: the ticket was cancelled only afterwards."""
    t0 = night["doors_open"]
    booking_cancel(booking=night["booking"], now=t0 + timedelta(minutes=5), by_customer=False)
    tickets_sync(booking_id=night["booking"].pk, now=t0 + timedelta(minutes=5), reason="cancelled")
    before, after = report(night["ana"].payload, t0), report(night["ben"].payload, t0 + timedelta(minutes=6))
    outcomes = scans_record(
        checkin_list=night["list"], reports=[before, after], device=None, now=t0 + timedelta(minutes=8)
    )
    assert [o.scan.result for o in outcomes] == ["valid", "revoked"]


def test_the_manifest_sends_only_what_changed(night):
    t0 = night["doors_open"]
    full = checkin_manifest(checkin_list=night["list"], modified_since=None, now=t0)
    assert full["full"] and len(full["tickets"]) == 3
    assert full["public_key"] and full["list"]["session_id"] == night["session"].pk
    cursor = full["server_time"]
    from django.utils.dateparse import parse_datetime

    scan(night["list"], night["ana"].payload, at=t0 + timedelta(minutes=1))
    delta = checkin_manifest(
        checkin_list=night["list"], modified_since=parse_datetime(cursor), now=t0 + timedelta(minutes=2)
    )
    assert not delta["full"]
    assert [(t["id"], t["admitted"]) for t in delta["tickets"]] == [(night["ana"].pk, True)]


def test_the_payload_names_its_session_and_verifies_with_that_events_key(night):
    ticket_id, session_id = signing.verify(
        payload=night["stand"].payload, public_key=public_key_of_session(session_id=night["session"].pk)
    )
    assert (ticket_id, session_id) == (night["stand"].pk, night["session"].pk)


# --- two doors at once ------------------------------------------------------------------------------

WINDOW = 0.2


def race_two_doors(clist, payload, at):
    barrier = threading.Barrier(2)
    results = [None, None]

    def door(i):
        try:
            barrier.wait()
            results[i] = scans_record(
                checkin_list=clist,
                reports=[ScanReport(id=uuid.uuid4(), raw=payload, scanned_at=at, shown_result="")],
                device=None,
                now=at,
            )[0].scan.result
        except Exception as error:  # noqa: BLE001 - the outcome under test
            results[i] = repr(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=door, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sorted(results)


@pytest.fixture
def slow_judgement(monkeypatch):
    """Each door pauses after taking its lock and before judging, so two doors overlap right there."""
    lock = scans.lock_tickets

    def lock_then_pause(**kwargs):
        found = lock(**kwargs)
        time.sleep(WINDOW)
        return found

    monkeypatch.setattr(scans, "lock_tickets", lock_then_pause)


def test_two_doors_scanning_the_same_ticket_at_the_same_moment_admit_it_once(night, slow_judgement):
    assert race_two_doors(night["list"], night["ana"].payload, night["doors_open"]) == ["already_in", "valid"]


def test_negative_control_without_the_ticket_lock_both_doors_let_the_ticket_in(night, monkeypatch):
    """Without the lock nothing stops the second door reading "not in yet" before the first writes.

    Each door waits, after reading the ticket's scans, until the other has read them too: the
    overlap the lock prevents, made certain instead of left to a pause that a busy machine can
    outlast (a door descheduled past the other's commit reads its scan and says "already in").
    """
    both_have_read = threading.Barrier(2, timeout=10)
    read = scans._stored_scans

    def read_then_wait_for_the_other_door(*args, **kwargs):
        found = read(*args, **kwargs)
        both_have_read.wait()
        return found

    monkeypatch.setattr(scans, "lock_tickets", lambda **kwargs: None)
    monkeypatch.setattr(scans, "_stored_scans", read_then_wait_for_the_other_door)
    assert race_two_doors(night["list"], night["ana"].payload, night["doors_open"]) == ["valid", "valid"]


def test_a_door_whose_request_started_earlier_but_was_answered_second_says_already_in(night):
    """Door B's scan carries an earlier clock than door A's, but A was answered first: A's "valid" stands,
    also after a later offline upload makes the server replay the ticket's scans."""
    opened = night["doors_open"]
    first = scan(night["list"], night["ana"].payload, at=opened + timedelta(milliseconds=5))
    second = scan(night["list"], night["ana"].payload, at=opened)  # its request began 5 ms earlier
    assert (first.scan.result, second.scan.result) == ("valid", "already_in")
    scan(night["list"], night["ana"].payload, at=opened + timedelta(minutes=1), offline=True, shown="valid")
    results = dict(Scan.objects.filter(pk__in=[first.scan.pk, second.scan.pk]).values_list("pk", "result"))
    assert (results[first.scan.pk], results[second.scan.pk]) == ("valid", "already_in")


def test_a_booking_for_a_class_gets_tickets_too(yoga):
    booking = hold_places(yoga["offering"], yoga["session"], 2)
    assert booking.offering.kind == "class"
    _, tickets = paid_tickets(yoga["offering"], yoga["session"], 2)
    assert len(tickets) == 2 and all(t.ticket_type is None for t in tickets)
