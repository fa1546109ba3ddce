"""Scans at the door: recorded as the devices report them (each with the id the device made) and
judged in the order they happened, so an offline door syncing late can turn another door's "valid"
into the second entry; both are kept and the later one flagged. Locks the scanned tickets
(`ticketing.locks.lock_tickets`) before reading the scans stored for them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q, prefetch_related_objects

from core.outbox.services import outbox_enqueue
from core.transactions import service_transaction
from ticketing import signing, timeline
from ticketing.locks import lock_tickets
from ticketing.models import (
    CheckInList,
    CheckInState,
    DoorDevice,
    Scan,
    Ticket,
)
from ticketing.selectors import (
    checkin_list_public_key,
    checkin_list_scope,
    public_key_of_session,
    unpaid_of,
)

GATE_RESULTS = {Scan.Result.VALID, Scan.Result.EXITED, Scan.Result.ALREADY_IN, Scan.Result.NOT_INSIDE}
ADMITTED = {Scan.Result.VALID}


@dataclass(frozen=True)
class ScanReport:
    """One scan as a device reports it."""

    id: uuid.UUID
    raw: str
    scanned_at: datetime
    direction: str = Scan.Direction.ENTRY
    door: str = ""
    shown_result: str = ""
    offline: bool = False
    override: bool = False


def _normalise_code(raw: str) -> str:
    return "".join(ch for ch in raw.upper() if ch.isalnum())


def _find_tickets(
    reports: list[ScanReport], clist: CheckInList, keys: dict[int, bytes]
) -> dict[uuid.UUID, Ticket | None]:
    """The ticket each scan names: a signed QR payload (checked against its event's key) or a typed code.

    Read with their booking (is it paid?) and what the door shows (type, zone, seat), in one query.
    """
    claimed: dict[uuid.UUID, int | str] = {}
    for report in reports:
        raw = report.raw.strip()
        if raw.startswith(f"{signing.PREFIX}."):
            try:
                ticket_id, session_id, _, _ = signing.read(raw)
                public = keys.get(session_id) or public_key_of_session(session_id=session_id)
                if public is None:
                    continue
                keys[session_id] = public
                signing.verify(payload=raw, public_key=public)
            except signing.BadPayload:
                continue
            claimed[report.id] = ticket_id
        elif 6 <= len(code := _normalise_code(raw)) <= 16:
            claimed[report.id] = code
    ids = [v for v in claimed.values() if isinstance(v, int)]
    codes = [v for v in claimed.values() if isinstance(v, str)]
    found = (
        Ticket.objects.select_related("booking", "ticket_type", "zone", "seat")
        .filter(Q(pk__in=ids) | Q(code__in=codes))
        .order_by()
        if claimed
        else []
    )
    by_id: dict[int, Ticket] = {}
    for ticket in found:
        if ticket.session_id == clist.session_id:
            ticket.session = clist.session  # loaded with the list already
        by_id[ticket.pk] = ticket
    # Another night's ticket: the door names that night (rare, so not joined into every scan).
    prefetch_related_objects(
        [t for t in by_id.values() if t.session_id != clist.session_id], "session__offering"
    )
    by_code = {t.code: t for t in by_id.values()}
    out: dict[uuid.UUID, Ticket | None] = {}
    for report in reports:
        claim = claimed.get(report.id)
        ticket = by_id.get(claim) if isinstance(claim, int) else by_code.get(claim) if claim else None
        if ticket is not None and isinstance(claim, int) and ticket.payload != report.raw.strip():
            ticket = None  # a genuine signature over another ticket's id: cannot happen unless the key leaked
        out[report.id] = ticket
    return out


def _fixed_result(
    report: ScanReport,
    ticket: Ticket | None,
    clist: CheckInList,
    unpaid: set[int],
    scope: tuple[frozenset[int], frozenset[int]],
) -> str:
    """The verdicts that do not depend on other scans; "" when it is down to the order of entries."""
    if ticket is None:
        return Scan.Result.INVALID
    if ticket.session_id != clist.session_id:
        return Scan.Result.WRONG_SESSION
    if ticket.status == Ticket.Status.REVOKED and ticket.revoked_at <= report.scanned_at:
        return Scan.Result.REVOKED
    types, zones = scope
    if (types and ticket.ticket_type_id not in types) or (zones and ticket.zone_id not in zones):
        return Scan.Result.NOT_ON_LIST
    if report.direction == Scan.Direction.ENTRY:
        if report.scanned_at < clist.session.starts_at - clist.opens_before:
            return Scan.Result.NOT_YET_VALID
        if ticket.booking_id in unpaid and not report.override:
            return Scan.Result.UNPAID
    return ""


def _judge(clist: CheckInList, scans: list[Scan]) -> tuple[list[Scan], CheckInState | dict]:
    """Replay one ticket's gate scans in time order: the first entry wins, later ones are flagged."""
    inside, first, last_entry, changed = False, None, None, []
    for scan in scans:
        if scan.direction == Scan.Direction.ENTRY:
            allowed = first is None or (clist.allow_reentry and (not clist.count_exits or not inside))
            result = Scan.Result.VALID if allowed else Scan.Result.ALREADY_IN
        else:
            result = Scan.Result.EXITED if inside else Scan.Result.NOT_INSIDE
        conflict_with = None
        if result == Scan.Result.ALREADY_IN:
            conflict_with = last_entry
        conflict = result == Scan.Result.ALREADY_IN and scan.shown_result == Scan.Result.VALID
        if result == Scan.Result.VALID:
            inside, last_entry = True, scan
            first = first or scan
        elif result == Scan.Result.EXITED:
            inside = False
        if (scan.result, scan.conflict, scan.conflict_with_id) != (
            result,
            conflict,
            conflict_with.pk if conflict_with else None,
        ):
            scan.result, scan.conflict, scan.conflict_with = result, conflict, conflict_with
            changed.append(scan)
    state = {
        "inside": inside,
        "admitted_scan": first,
        "last_entry_at": last_entry.scanned_at if last_entry else None,
        "last_entry_door": last_entry.door if last_entry else "",
    }
    return changed, state


@dataclass
class ScanOutcome:
    scan: Scan
    ticket: Ticket | None
    first_entry: Scan | None = None


def scans_record(
    *, checkin_list: CheckInList, reports: list[ScanReport], device: DoorDevice | None, now: datetime
) -> list[ScanOutcome]:
    """Record scans from one device (one online scan, or a batch synced after being offline). Idempotent.

    A scan id already recorded is not recorded again; its outcome is returned as it stands now.
    Scans naming the same ticket are replayed in time order under the ticket's lock, so two doors
    cannot both be first; someone let in by an offline door after an earlier entry is flagged.

    The list may come from `checkin_lists_for_scans` (its scope and key loaded with it) or be any
    CheckInList (they are read here).
    """
    clist = checkin_list
    scope = checkin_list_scope(checkin_list=clist)
    key = checkin_list_public_key(checkin_list=clist)
    tickets = _find_tickets(reports, clist, {clist.session_id: key} if key is not None else {})
    unpaid = unpaid_of(bookings=[t.booking for t in tickets.values() if t is not None])
    ticket_ids = sorted(
        {t.pk for t in tickets.values() if t is not None and t.session_id == clist.session_id}
    )
    with service_transaction():
        lock_tickets(ticket_ids=ticket_ids)
        fixed: dict[uuid.UUID, str] = {}
        for report in reports:  # a scan id sent twice in one batch counts once, as first sent
            if report.id not in fixed:
                fixed[report.id] = _fixed_result(report, tickets[report.id], clist, unpaid, scope)
        # One read, under the lock, for both: which scan ids are recorded already (a phone retrying),
        # and the recorded gate scans of every ticket that may be judged now.
        stored = _stored_scans(clist, reports, {tickets[r].pk for r, verdict in fixed.items() if not verdict})
        fresh: list[Scan] = []
        known = set(stored)
        for report in reports:
            if report.id in known:
                continue
            known.add(report.id)
            ticket = tickets[report.id]
            fresh.append(
                Scan(
                    id=report.id,
                    checkin_list=clist,
                    ticket=ticket,
                    raw=report.raw.strip()[:300],
                    direction=report.direction,
                    result=fixed[report.id] or Scan.Result.VALID,
                    shown_result=report.shown_result,
                    offline=report.offline,
                    override=report.override,
                    scanned_at=report.scanned_at,
                    received_at=now,
                    device=device,
                    door=(report.door or (device.name if device else ""))[:80],
                    staff_id=device.user_id if device else None,
                )
            )
        # Judged before they are written, so each is written once, with its verdict.
        gate = [s for s in fresh if s.ticket_id and not fixed[s.id]]
        changed, states, newly_admitted = _rejudge(clist, stored, gate)
        Scan.objects.bulk_create(fresh, ignore_conflicts=True)
        if changed:
            Scan.objects.bulk_update(changed, ["result", "conflict", "conflict_with"])
        if states:
            CheckInState.objects.bulk_create(
                [
                    CheckInState(checkin_list=clist, ticket_id=ticket_id, updated_at=now, **state)
                    for ticket_id, state in states.items()
                ],
                update_conflicts=True,
                unique_fields=["checkin_list", "ticket"],
                update_fields=["inside", "admitted_scan", "last_entry_at", "last_entry_door", "updated_at"],
            )
        _announce_arrivals(newly_admitted, tickets, states, now)
    return _outcomes(clist, reports, tickets, {**stored, **{s.id: s for s in fresh}}, states)


def _stored_scans(
    clist: CheckInList, reports: list[ScanReport], ticket_ids: set[int]
) -> dict[uuid.UUID, Scan]:
    """The scans among *reports* recorded already, and the recorded gate scans of these tickets."""
    found = {
        s.pk: s
        for s in Scan.objects.filter(
            Q(pk__in=[r.id for r in reports])
            | Q(checkin_list=clist, ticket_id__in=ticket_ids, result__in=GATE_RESULTS)
        ).order_by()
    }
    for scan in found.values():  # the first entry a flagged scan points at is (nearly always) here too
        if scan.conflict_with_id in found:
            scan.conflict_with = found[scan.conflict_with_id]
    return found


def _rejudge(
    clist: CheckInList, stored: dict[uuid.UUID, Scan], fresh: list[Scan]
) -> tuple[list[Scan], dict[int, dict], list[int]]:
    """Replay the gate scans of each ticket a fresh scan names, recorded ones with the fresh ones.

    Returns the recorded scans whose verdict changed (a late upload of an earlier entry), each
    ticket's state, and the tickets let in for the first time. A fresh online scan is nearly always
    the latest of its ticket, so only its own verdict is new; the replay costs no query either way.
    """
    by_ticket: dict[int, list[Scan]] = {}
    for scan in fresh:
        by_ticket.setdefault(scan.ticket_id, [])
    admitted_before = set()
    for scan in stored.values():
        if scan.checkin_list_id == clist.pk and scan.ticket_id in by_ticket and scan.result in GATE_RESULTS:
            by_ticket[scan.ticket_id].append(scan)
            # The state written with these scans names its first entry, which is always "valid".
            if scan.result == Scan.Result.VALID:
                admitted_before.add(scan.ticket_id)
    for scan in fresh:
        if not scan.offline and by_ticket[scan.ticket_id]:
            # An online scan is answered now, under the ticket's lock: it comes after every scan
            # already recorded, whatever its request's clock said, and keeps that place in any later
            # replay (an offline upload), so an answer shown at a door is never changed afterwards.
            latest = max(s.scanned_at for s in by_ticket[scan.ticket_id])
            if scan.scanned_at <= latest:
                scan.scanned_at = latest + timedelta(microseconds=1)
        by_ticket[scan.ticket_id].append(scan)
    fresh_ids = {s.id for s in fresh}
    # Two scans made at the same instant go in the order the server heard them: one recorded earlier
    # (its answer already shown at its door) stays first, whatever the ids say.
    changed: list[Scan] = []
    states: dict[int, dict] = {}
    for ticket_id, scans in by_ticket.items():
        scans.sort(key=lambda s: (s.scanned_at, s.received_at, s.id in fresh_ids, str(s.id)))
        judged, states[ticket_id] = _judge(clist, scans)
        changed += [s for s in judged if s.id not in fresh_ids]
    newly_admitted = [
        tid for tid, state in states.items() if state["admitted_scan"] and tid not in admitted_before
    ]
    return changed, states, newly_admitted


def _announce_arrivals(ticket_ids: list[int], tickets: dict, states: dict[int, dict], now: datetime) -> None:
    """Put each arrival on its booking's timeline, and tell others someone arrived (payments takes a
    pay-on-arrival card), once per booking."""
    by_id = {t.pk: t for t in tickets.values() if t is not None}
    timeline.checked_in(
        [(by_id[tid], states[tid]["admitted_scan"]) for tid in ticket_ids if tid in by_id], now=now
    )
    for booking_id in sorted({by_id[tid].booking_id for tid in ticket_ids if tid in by_id}):
        outbox_enqueue(
            topic="ticketing.checked_in",
            payload={"booking_id": booking_id},
            now=now,
            key=f"checked-in:{booking_id}",
        )


def _outcomes(
    clist: CheckInList,
    reports: list[ScanReport],
    tickets: dict,
    scans: dict[uuid.UUID, Scan],
    states: dict[int, dict],
) -> list[ScanOutcome]:
    """Each report's scan as it stands now, with the first entry of its ticket.

    Scans judged just now answer from memory; a scan recorded before and not judged again (a phone
    retrying) is looked up.
    """
    mine = [scans[r.id] for r in reports]
    others = [s for s in mine if s.checkin_list_id != clist.pk or s.ticket_id not in states]
    first_entries = {ticket_id: state["admitted_scan"] for ticket_id, state in states.items()}
    if others:
        prefetch_related_objects([s for s in others if s.conflict_with_id], "conflict_with")
        for state in CheckInState.objects.filter(
            checkin_list_id__in={s.checkin_list_id for s in others},
            ticket_id__in={s.ticket_id for s in others if s.ticket_id},
        ).select_related("admitted_scan"):
            first_entries.setdefault(state.ticket_id, state.admitted_scan)
    return [
        ScanOutcome(
            scan=scan,
            ticket=tickets.get(report.id) or scan.ticket,
            first_entry=scan.conflict_with or first_entries.get(scan.ticket_id),
        )
        for report, scan in zip(reports, mine, strict=True)
    ]
