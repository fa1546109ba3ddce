"""The door page on a phone: sign in, name the phone, pick the session, check tickets, lose the network.

Offline the phone judges tickets alone (the event's public key and the ticket list it keeps in
IndexedDB), queues the scans and uploads them when the network returns; the server then holds the
same story. Two offline doors letting the same person in is a conflict the staff get to see.
"""

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from PIL import Image
from playwright.sync_api import Page, expect

from booking.services import booking_cancel
from inventory.models import Session
from tests.booking.helpers import someone
from tests.clock import browser_clock_follow
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, PHONE, VENUE_ZONE, site_requests_wait_finished
from tests.e2e.helpers import accessibility_problems, controls_cut_off, horizontal_overflow
from tests.ticketing.helpers import adults, door_list, paid_tickets, standing
from ticketing.models import CheckInList, CheckInState, DoorDevice, Scan
from ticketing.qr import qr_png
from ticketing.services import door_device_revoke, tickets_sync

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "door-pass-123"


# --- the people and the concert --------------------------------------------------------------------


@pytest.fixture
def door_staff():
    """Dora, on the door team (the role from migration ticketing/0002, made again after a flush)."""
    group, _ = Group.objects.get_or_create(name="Door staff")
    group.permissions.add(
        Permission.objects.get(content_type__app_label="ticketing", codename="scan_tickets")
    )
    user = get_user_model().objects.create_user("dora", password=PASSWORD)
    user.groups.add(group)
    return user


@pytest.fixture
def tonight(concert):
    """The concert moved to an hour from now, so its doors (open two hours before) are open now;
    four people hold a ticket each: three in the stalls, one standing."""
    now = timezone.now()
    Session.objects.filter(pk=concert["session"].pk).update(
        starts_at=now + timedelta(hours=1), ends_at=now + timedelta(hours=3)
    )
    concert["session"].refresh_from_db()
    people = {}
    for name, kind in [("Ana Smith", adults), ("Ben Okafor", adults), ("Chloe Park", adults)]:
        _, [ticket] = paid_tickets(
            concert["offering"], concert["session"], tickets=kind(concert, 1), who=someone(name), now=now
        )
        people[name] = ticket
    dan, [ticket] = paid_tickets(
        concert["offering"],
        concert["session"],
        tickets=standing(concert, 1),
        who=someone("Dan Revoked"),
        now=now,
    )
    people["Dan Revoked"] = ticket
    return {**concert, "people": people, "dan_booking": dan, "list": door_list(concert["session"])}


# --- what a door person does -----------------------------------------------------------------------


def watch_console(page: Page) -> list[str]:
    """Errors the page's scripts log (offline, the browser's 'Failed to load resource' lines are expected)."""
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    return errors


def sign_in(page: Page) -> None:
    page.goto("/door/")
    expect(page).to_have_url(re.compile(r"/door/login/\?next=/door/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Door sign-in")
    page.get_by_label("Username").fill("dora")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Name this phone")).to_be_visible()


def name_phone(page: Page, door: str) -> None:
    page.get_by_label("Which door is this phone at?").fill(door)
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("heading", name="Pick a session")).to_be_visible()
    expect(page.locator("#device-label")).to_have_text(door)


def pick_session(page: Page, offering: str) -> None:
    page.get_by_role("button", name=re.compile(re.escape(offering))).click()
    expect(page.locator("#session-title")).to_have_text(offering)
    expect(page.locator("#sync-state")).to_contain_text("List updated")


def ready_at_the_door(page: Page, door: str, offering: str) -> None:
    sign_in(page)
    name_phone(page, door)
    pick_session(page, offering)


def network(page: Page, *, up: bool) -> None:
    """Take the phone's network away, or give it back. Besides the browser's offline mode the API is
    refused outright: Chromium can let a request of a document it is reloading out before offline
    mode applies to it (seen once in a loaded run: the reloaded page uploaded its queue "offline")."""
    page.context.set_offline(not up)
    if up:
        page.context.unroute("**/door/api/**")
    else:
        page.context.route("**/door/api/**", lambda route: route.abort("internetdisconnected"))


def check(page: Page, code: str) -> None:
    page.get_by_label("Type the code").fill(code)
    page.get_by_role("button", name="Check").click()


def expect_answer(page: Page, result: str, *texts: str) -> None:
    answer = page.locator("#answer")
    expect(answer).to_have_attribute("data-result", result)
    for text in texts:
        expect(answer).to_contain_text(text)


def expect_counts(page: Page, admitted: int, expected: int) -> None:
    expect(page.locator("#admitted")).to_have_text(str(admitted))
    expect(page.locator("#expected")).to_have_text(str(expected))


def forged(payload: str) -> str:
    """The payload with one character of its signature changed, as a tamperer would."""
    prefix, message, signature = payload.split(".")
    i = len(signature) // 2
    signature = signature[:i] + ("A" if signature[i] != "A" else "B") + signature[i + 1 :]
    return f"{prefix}.{message}.{signature}"


# --- the tests -------------------------------------------------------------------------------------


def test_offline_the_door_judges_alone_queues_the_scans_and_uploads_them_when_back(
    open_page: Callable[..., Page], shot, door_staff, tonight
):
    """Online the server answers; offline the phone tells valid, repeated, forged and revoked codes
    apart by itself, queues every scan, and the server ends up with the same answers."""
    people = tonight["people"]
    ana, ben, chloe, dan = (people[n] for n in ("Ana Smith", "Ben Okafor", "Chloe Park", "Dan Revoked"))
    page = open_page(phone=True)
    errors = watch_console(page)

    ready_at_the_door(page, "North door", tonight["offering"].name)
    expect_counts(page, 0, 4)
    assert accessibility_problems(page) == []

    check(page, ana.code.lower()[:5] + "-" + ana.code.lower()[5:])  # typed as people do
    expect_answer(page, "valid", "Valid", "Ana Smith", "Adult · Stalls · Seat", "Checked with the server")
    expect_counts(page, 1, 4)
    assert horizontal_overflow(page) == 0 and controls_cut_off(page) == []
    shot(page, "1-valid")

    # Dan's booking is cancelled while the phone is online: the next update brings the revocation.
    booking_cancel(booking=tonight["dan_booking"], now=timezone.now(), by_customer=False, refund=False)
    tickets_sync(booking_id=tonight["dan_booking"].pk, now=timezone.now(), reason="booking cancelled")
    page.get_by_role("button", name="Update", exact=True).click()
    expect_counts(page, 1, 3)

    network(page, up=False)
    expect(page.locator("#net-state")).to_have_text("Offline")

    check(page, ben.payload)  # a hand scanner types the QR code's text
    expect_answer(page, "valid", "Ben Okafor", "Checked on this phone (offline)")
    expect_counts(page, 2, 3)

    check(page, ana.code)
    expect_answer(page, "already_in", "Already in", "Ana Smith", "First in at ", ", North door")
    shot(page, "2-already-in")

    check(page, forged(chloe.payload))
    expect_answer(page, "invalid", "Not valid", "not genuine")

    check(page, dan.payload)
    expect_answer(page, "revoked", "Revoked", "Dan Revoked")

    expect(page.locator("#queue-count")).to_have_text("4")
    expect(page.locator("#queue-label")).to_have_text("scans to upload")
    shot(page, "3-offline-queue")

    # Offline, the page opens again from the service worker's cache, with its queue and list.
    assert page.reload().from_service_worker
    expect(page.locator("#session-title")).to_have_text(tonight["offering"].name)
    expect(page.locator("#queue-count")).to_have_text("4")
    check(page, ana.code)
    expect_answer(page, "already_in", "Ana Smith")
    expect(page.locator("#queue-count")).to_have_text("5")
    assert Scan.objects.count() == 1  # nothing reached the server yet

    network(page, up=True)
    expect(page.locator("#queue-count")).to_have_text("0")
    expect(page.locator("#net-state")).to_have_text("Online")
    expect(page.locator("#sync-state")).to_contain_text("Uploaded 5 scans")
    expect_counts(page, 2, 3)

    scans = list(Scan.objects.order_by("scanned_at"))
    assert [(s.ticket_id, s.result, s.shown_result, s.offline, s.door) for s in scans] == [
        (ana.pk, "valid", "", False, "North door"),
        (ben.pk, "valid", "valid", True, "North door"),
        (ana.pk, "already_in", "already_in", True, "North door"),
        (None, "invalid", "invalid", True, "North door"),
        (dan.pk, "revoked", "revoked", True, "North door"),
        (ana.pk, "already_in", "already_in", True, "North door"),
    ]
    assert not any(s.conflict for s in scans)
    assert all(s.device.name == "North door" and s.staff == door_staff for s in scans)
    admitted = CheckInState.objects.filter(checkin_list=tonight["list"], admitted_scan__isnull=False)
    assert {s.ticket_id for s in admitted} == {ana.pk, ben.pk}
    assert CheckInState.objects.get(ticket=ana).admitted_scan == scans[0]

    # Uploading again changes nothing: the ids are the phone's own.
    page.get_by_role("button", name="Update", exact=True).click()
    expect(page.locator("#sync-state")).to_contain_text("List updated")
    assert Scan.objects.count() == 6
    assert errors == []


def test_two_offline_doors_letting_the_same_person_in_is_a_conflict_the_staff_see(
    open_page: Callable[..., Page], shot, door_staff, tonight
):
    """The earlier scan wins, whichever door uploads first; the later one is flagged with door and time."""
    ana = tonight["people"]["Ana Smith"]
    north, south = open_page(phone=True), open_page(phone=True)
    errors = watch_console(north) + watch_console(south)
    ready_at_the_door(north, "North door", tonight["offering"].name)
    ready_at_the_door(south, "South door", tonight["offering"].name)

    network(north, up=False)
    network(south, up=False)
    check(north, ana.payload)
    expect_answer(north, "valid", "Ana Smith", "offline")
    north.wait_for_timeout(1000)  # a second later, at the other door
    check(south, ana.code)
    expect_answer(south, "valid", "Ana Smith", "offline")

    # The later scan reaches the server first; the earlier one still wins when it arrives.
    network(south, up=True)
    expect(south.locator("#queue-count")).to_have_text("0")
    network(north, up=True)
    expect(north.locator("#queue-count")).to_have_text("0")

    first = Scan.objects.get(door="North door")
    second = Scan.objects.get(door="South door")
    assert (first.result, first.conflict) == ("valid", False)
    assert (second.result, second.shown_result, second.conflict) == ("already_in", "valid", True)
    assert second.conflict_with == first
    assert CheckInState.objects.get(ticket=ana).admitted_scan == first

    for page in (north, south):
        page.get_by_role("button", name="Update", exact=True).click()
        toggle = page.get_by_role("button", name="1 conflict")
        expect(toggle).to_be_visible()
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(page.locator("#conflict-list li")).to_have_text(
            f"Ana Smith ({ana.code}) let in at South door {clock(page, second.scanned_at)}"
            f" although first checked in at North door {clock(page, first.scanned_at)}"
        )
    expect_counts(north, 1, 4)
    shot(north, "conflicts")
    assert errors == []


def clock(page: Page, at) -> str:
    """The time as the page shows it (the phone's own locale and zone)."""
    return page.evaluate(
        "iso => new Date(iso).toLocaleTimeString(undefined, {hour: '2-digit', minute: '2-digit'})",
        at.isoformat(),
    )


def test_unpaid_needs_staff_to_let_them_in_and_exits_count_when_the_list_counts_them(
    open_page: Callable[..., Page], shot, door_staff, tonight
):
    """An unpaid booking is stopped until staff press "Let in anyway"; with exits counted, out and back in."""
    CheckInList.objects.filter(pk=tonight["list"].pk).update(count_exits=True, allow_reentry=True)
    _, [uma] = paid_tickets(
        tonight["offering"],
        tonight["session"],
        tickets=adults(tonight, 1),
        who=someone("Uma Unpaid"),
        now=timezone.now(),
        paid=False,
    )
    page = open_page(phone=True)
    errors = watch_console(page)
    ready_at_the_door(page, "North door", tonight["offering"].name)
    expect(page.get_by_role("group", name="Scanning people")).to_be_visible()

    check(page, uma.code)
    expect_answer(page, "unpaid", "Not paid", "Uma Unpaid", "not fully paid")
    shot(page, "unpaid")
    page.get_by_role("button", name="Let in anyway").click()
    expect_answer(page, "valid", "Uma Unpaid", "Checked with the server")
    expect(page.get_by_role("button", name="Let in anyway")).to_be_hidden()
    expect(page.locator("#inside")).to_have_text("1")

    page.get_by_text("Out", exact=True).click()
    check(page, uma.payload)
    expect_answer(page, "exited", "Left", "Uma Unpaid")
    expect(page.locator("#inside")).to_have_text("0")

    network(page, up=False)
    page.get_by_text("In", exact=True).click()
    check(page, uma.payload)
    expect_answer(page, "unpaid", "Uma Unpaid", "offline")
    page.get_by_role("button", name="Let in anyway").click()
    expect_answer(page, "valid", "Uma Unpaid", "offline")
    expect(page.locator("#inside")).to_have_text("1")
    expect(page.locator("#queue-count")).to_have_text("2")
    network(page, up=True)
    expect(page.locator("#queue-count")).to_have_text("0")

    scans = list(Scan.objects.order_by("scanned_at"))
    assert [(s.result, s.direction, s.override, s.offline) for s in scans] == [
        ("unpaid", "entry", False, False),
        ("valid", "entry", True, False),
        ("exited", "exit", False, False),
        ("unpaid", "entry", False, True),
        ("valid", "entry", True, True),
    ]
    state = CheckInState.objects.get(ticket=uma)
    assert state.inside and state.admitted_scan == scans[1]
    assert errors == []


def test_a_phone_switched_off_keeps_its_queue_until_someone_signs_it_in_again(
    open_page: Callable[..., Page], door_staff, tonight
):
    """A revoked device is told to sign in again; scans it made offline are kept and upload afterwards."""
    ana = tonight["people"]["Ana Smith"]
    page = open_page(phone=True)
    errors = watch_console(page)
    ready_at_the_door(page, "North door", tonight["offering"].name)
    network(page, up=False)
    check(page, ana.code)
    expect_answer(page, "valid", "Ana Smith", "offline")

    device = DoorDevice.objects.get(name="North door")
    door_device_revoke(device=device, now=timezone.now())  # a manager switches the phone off
    network(page, up=True)
    expect(page.get_by_role("heading", name="Name this phone")).to_be_visible()
    expect(page.locator("#notice")).to_contain_text("Sign in again")
    expect(page.locator("#notice")).to_contain_text("The 1 scan on this phone will upload after that.")
    assert Scan.objects.count() == 0

    name_phone(page, "North door, phone 2")
    pick_session(page, tonight["offering"].name)
    expect(page.locator("#queue-count")).to_have_text("0")
    [scan] = Scan.objects.all()
    assert (scan.ticket_id, scan.result, scan.offline, scan.door) == (
        ana.pk,
        "valid",
        True,
        "North door, phone 2",
    )
    assert errors == []


# --- the camera ------------------------------------------------------------------------------------


def fake_camera_video(path: Path, png: bytes, frames: int = 5) -> Path:
    """A Y4M clip of a QR code on white, for Chromium's fake camera (it loops the clip)."""
    import io

    width, height = 640, 480
    code = Image.open(io.BytesIO(png)).convert("L")
    side = 420
    code = code.resize((side, side), Image.NEAREST)
    frame = Image.new("L", (width, height), 255)
    frame.paste(code, ((width - side) // 2, (height - side) // 2))
    luma = frame.tobytes()
    chroma = bytes([128]) * ((width // 2) * (height // 2))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + luma + chroma + chroma)
    return path


@pytest.fixture
def camera_browser(browser, tmp_path, tonight):
    """A second Chromium whose camera films Ben's ticket (the shared one has no fake camera)."""
    video = fake_camera_video(tmp_path / "ben.y4m", qr_png(tonight["people"]["Ben Okafor"].payload))
    own = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )
    yield own
    own.close()


def test_the_camera_reads_a_qr_code_once_while_it_stays_in_view(
    camera_browser, live_server, shot, door_staff, tonight
):
    """Without BarcodeDetector, camera frames go through jsQR; a code held in view counts once."""
    ben = tonight["people"]["Ben Okafor"]
    context = camera_browser.new_context(
        base_url=live_server.url,
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        timezone_id=VENUE_ZONE,
        locale="en-GB",
        permissions=["camera"],
    )
    context.set_default_timeout(15_000)
    browser_clock_follow(context)
    context.add_init_script("delete window.BarcodeDetector")  # where Chromium has one: test the fallback
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    errors = watch_console(page)
    try:
        ready_at_the_door(page, "Side door", tonight["offering"].name)
        camera = page.get_by_role("button", name="Start camera")
        camera.click()
        expect(page.get_by_role("button", name="Stop camera")).to_have_attribute("aria-pressed", "true")
        expect_answer(page, "valid", "Ben Okafor", "Checked with the server")
        shot(page, "camera")
        page.wait_for_timeout(3500)  # the code stays in front of the camera
        page.get_by_role("button", name="Stop camera").click()
        expect(page.locator("#camera-view")).to_be_hidden()
        [scan] = Scan.objects.all()
        assert (scan.ticket_id, scan.result, scan.raw, scan.door) == (
            ben.pk,
            "valid",
            ben.payload,
            "Side door",
        )

        # The fallback decoder on its own: the ticket's QR image from its page, decoded in the page.
        decoded = page.evaluate(
            """async url => {
                const image = new Image();
                image.src = url;
                await image.decode();
                const canvas = document.createElement("canvas");
                canvas.width = image.width; canvas.height = image.height;
                const context = canvas.getContext("2d");
                context.drawImage(image, 0, 0);
                return window.door.decodeImageData(context.getImageData(0, 0, image.width, image.height));
            }""",
            f"/t/{ben.access_key}/qr.png",
        )
        assert decoded == ben.payload
    finally:
        context.close()
        site_requests_wait_finished()
    assert problems == [] and errors == []
