"""Keyboard-only booking, and what assistive technology needs on every customer page."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from booking.models import Booking, BookingStatus
from booking.services import CustomerDetails, TicketRequest, booking_hold_session
from tests.e2e.helpers import (
    DECLINED_CARD,
    GOOD_CARD,
    accessibility_problems,
    accessible_description,
    expect_confirmed_after_payment,
)
from tests.inventory import factories as make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]  # the live server sees commits

FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return "(nothing: the page itself)";
  const text = (e.getAttribute("aria-label") || e.innerText || e.value || "").trim().replace(/\\s+/g, " ");
  return `<${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}> ${text.slice(0, 40)}`;
}"""


def has_focus(target: Locator) -> bool:
    return target.evaluate("e => e === document.activeElement")


def tab_to(page: Page, target: Locator, *, limit: int = 80) -> None:
    """Press Tab until *target* has the keyboard focus, as a keyboard user moves through a page."""
    visited = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        if has_focus(target):
            outline = target.evaluate("e => getComputedStyle(e).outlineStyle")
            assert outline != "none", f"{target} has the focus but shows no focus outline"
            return
        visited.append(page.evaluate(FOCUSED))
    raise AssertionError(f"{limit} presses of Tab never reached {target}; the focus went: {visited}")


def test_a_keyboard_alone_finds_books_and_pays_for_an_appointment(page, shot, business, stripe_settings):
    """Tab, typing, Enter and Space alone lead from the catalogue through form and checkout to Confirmed."""
    page.goto("/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

    search = page.get_by_role("searchbox", name="Search")
    tab_to(page, search)
    page.keyboard.type("haircut")
    results = page.locator("#results")
    expect(results.get_by_role("heading", level=2)).to_have_text(["Haircut & finish"])
    tab_to(page, results.get_by_role("link", name="Haircut & finish"))
    shot(page, "1-catalogue")
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_have_text("Haircut & finish")
    first_time = page.locator("#availability .slots a.slot").first
    tab_to(page, first_time)
    shot(page, "2-offering")
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_have_text("Book Haircut & finish")
    tab_to(page, page.get_by_label("Your name"))
    page.keyboard.type("Margaret Hamilton")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type("margaret@example.com")
    submit = page.get_by_role("button", name="Hold and continue to payment")
    tab_to(page, submit)
    shot(page, "3-form")
    page.keyboard.press("Space")

    page.wait_for_url(re.compile(r"/pay/[^/]+/$"))
    booking = Booking.objects.get(customer__email="margaret@example.com")
    assert booking.customer.name == "Margaret Hamilton"
    tab_to(page, page.get_by_label("Card number"))
    page.keyboard.type(GOOD_CARD)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Expiry date (MM / YY)")).to_be_focused()
    page.keyboard.type("12 / 34")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Security code (CVC)")).to_be_focused()
    page.keyboard.type("123")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Pay 48.00 GBP")).to_be_focused()
    shot(page, "4-checkout")
    page.keyboard.press("Space")

    expect_confirmed_after_payment(page)
    shot(page, "5-confirmed")
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED


def test_the_live_refresh_of_free_times_keeps_the_keyboard_focus_where_it_was(page, shot, business):
    """A keyboard user resting on a time keeps their place when the times refresh (every 10 s)."""
    page.clock.install()  # the refresh is a 10 s timer: jump the page's clock instead of waiting
    page.goto("/o/haircut/")
    chosen = page.locator("#availability .slots a.slot").first
    tab_to(page, chosen)
    href, label = chosen.get_attribute("href"), " ".join(chosen.inner_text().split())
    page.evaluate(
        "() => document.addEventListener('htmx:afterSwap', () => { window.refreshed = true; }, {once: true})"
    )
    page.clock.fast_forward(10_000)
    page.wait_for_function("() => window.refreshed === true")
    shot(page, "after-refresh")

    focused_href = page.evaluate("() => document.activeElement.getAttribute('href')")
    assert focused_href == href, f"after the refresh the focus left {label!r} for {page.evaluate(FOCUSED)}"


def test_every_customer_page_names_its_controls_describes_images_and_has_one_h1(
    page, shot, business, stripe_settings
):
    """Catalogue, offering pages, booking forms (with the seat map) and checkout pass the basic checks."""
    problems = []

    def audit(step: str) -> None:
        shot(page, step)
        problems.extend(accessibility_problems(page))

    page.goto("/")
    audit("catalogue")
    page.goto("/?q=nothing-matches-this")
    audit("catalogue-empty")
    for slug in ("haircut", "vinyasa-flow", "midwinter-strings"):
        page.goto(f"/o/{slug}/")
        expect(page.locator("#availability")).to_be_visible()
        audit(f"offering-{slug}")
    for slug in ("vinyasa-flow", "midwinter-strings"):
        page.goto(f"/o/{slug}/")
        page.locator("#availability").get_by_role("link", name="Book", exact=True).first.click()
        expect(page.get_by_role("button", name="Hold and continue to payment")).to_be_visible()
        audit(f"form-{slug}")
    page.goto("/o/haircut/")
    page.locator("#availability .slots a.slot").first.click()
    expect(page.get_by_label("Your name")).to_be_visible()
    audit("form-haircut")
    page.get_by_label("Your name").fill("Anita Borg")
    page.get_by_label("Email").fill("anita@example.com")
    page.get_by_role("button", name="Hold and continue to payment").click()
    expect(page.get_by_label("Card number")).to_be_visible()
    audit("checkout")

    assert not problems, "\n".join(problems)


def test_after_a_declined_card_the_keyboard_focus_moves_to_the_explanation(
    page, shot, business, stripe_settings
):
    """A keyboard user who pressed Pay lands on the decline message, not back at the top of the page."""
    page.goto("/o/gentle-yoga/")
    page.locator("#availability").get_by_role("link", name="Book", exact=True).first.click()
    page.get_by_label("Your name").fill("Karen Spärck Jones")
    page.get_by_label("Email").fill("karen@example.com")
    page.get_by_role("button", name="Hold and continue to payment").click()

    tab_to(page, page.get_by_label("Card number"))
    page.keyboard.type(DECLINED_CARD)
    page.keyboard.press("Tab")
    page.keyboard.type("12 / 34")
    page.keyboard.press("Tab")
    page.keyboard.type("123")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Pay 12.00 GBP")).to_be_focused()
    page.keyboard.press("Space")

    message = page.get_by_role("alert").filter(has_text="declined")
    expect(message).to_be_visible()
    shot(page, "declined")
    expect(message).to_be_focused(timeout=2_000)  # checkout.js means to focus it (`message.focus()`)


def test_the_booking_forms_help_and_error_texts_are_read_out_with_their_fields(page, shot, business):
    """A screen reader reads a field's help, and after a failed submit its error, on reaching the field."""
    page.goto("/o/vinyasa-flow/")
    page.locator("#availability").get_by_role("link", name="Book", exact=True).first.click()
    email = page.get_by_label("Email")
    expect(email).to_be_visible()
    problems = []
    description = accessible_description(page, "#id_email")
    if "Your confirmation and manage link go here." not in description:
        problems.append(
            f"before submitting, Email is described as {description!r}"
            f" (aria-describedby={email.get_attribute('aria-describedby')!r})"
        )

    page.get_by_label("Your name").fill("Sophie Wilson")
    page.get_by_role("button", name="Hold and continue to payment").click()
    expect(page.locator(".has-error .error")).to_have_text("This field is required.")
    expect(email).to_have_attribute("aria-invalid", "true")
    shot(page, "error")
    description = accessible_description(page, "#id_email")
    if "This field is required." not in description:
        problems.append(
            f"after the failed submit, Email is described as {description!r}"
            f" (aria-describedby={email.get_attribute('aria-describedby')!r})"
        )
    assert not problems, "\n".join(problems)


def test_a_refused_booking_is_explained_and_the_keyboard_focus_moves_to_the_explanation(page, shot):
    """When the last places go while the form is open, the answer is shown in place and focused."""
    now = timezone.now()
    studio = make.location(name="Harbour Studio")
    pilates = make.class_offering(at=studio, name="Reformer Pilates", price="0.00")
    session = make.session(offering=pilates, starts_at=now + timedelta(days=2), capacity=2, now=now)
    page.goto(f"/o/{pilates.slug}/book/?session={session.pk}")
    tab_to(page, page.get_by_label("Places"))
    page.keyboard.press("ArrowDown")  # 2 places
    expect(page.get_by_label("Places")).to_have_value("2")
    booking_hold_session(  # meanwhile someone else takes one of the two places
        offering=pilates,
        session=session,
        tickets=[TicketRequest()],
        customer=CustomerDetails(name="Quick Finger", email="quick@example.com"),
        idempotency_key="the-other-customer",
        now=now,
    )
    tab_to(page, page.get_by_label("Your name"))
    page.keyboard.type("Frances Spence")
    page.keyboard.press("Tab")
    page.keyboard.type("frances.spence@example.com")
    tab_to(page, page.get_by_role("button", name="Book now"))
    page.keyboard.press("Space")

    explanation = page.get_by_role("alert")
    expect(explanation).to_contain_text("Only 1 place left; you asked for 2.")
    shot(page, "refused")
    assert not Booking.objects.filter(customer__email="frances.spence@example.com").exists()
    expect(explanation).to_be_focused(timeout=2_000)  # site.js: "Focus moves to the first message."
