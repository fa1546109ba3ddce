"""What browser tests do often: pay by card, deliver the outbox, read emails, audit a page's accessibility."""

import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from email.message import EmailMessage

from django.utils import timezone
from playwright.sync_api import Page, expect

from core.outbox.services import outbox_sweep
from tests.conftest import wait_until

GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"
CONTROLS = "input:not([type=hidden]), select, textarea, button"


_SWAP_WATCH = """([token, path]) => {
  window.__htmxSwaps = window.__htmxSwaps || {};
  window.__htmxSwaps[token] = false;
  document.addEventListener("htmx:afterSettle", function seen(event) {
    if (event.detail.requestConfig && event.detail.requestConfig.path === path) {
      window.__htmxSwaps[token] = true;
      document.removeEventListener("htmx:afterSettle", seen);
    }
  });
}"""


@contextlib.contextmanager
def htmx_swap(page: Page, path: str) -> Iterator[None]:
    """On leaving the block, wait until htmx has swapped in (and settled) its answer to the request for
    `path` that the block triggered: the new content, not whatever was on the page a moment before.

    Other swaps meanwhile (the free times refresh themselves every 10 s) do not count.
    """
    token = uuid.uuid4().hex
    page.evaluate(_SWAP_WATCH, [token, path])
    yield
    page.wait_for_function("(token) => window.__htmxSwaps[token] === true", arg=token)


def deliver_outbox() -> int:
    """Deliver everything the outbox holds now, as the worker would (a message may enqueue another)."""
    delivered = 0
    for _ in range(10):
        counts = outbox_sweep(now=timezone.now())
        if not any(counts.values()):
            return delivered
        delivered += sum(counts.values())
    raise AssertionError("the outbox kept producing messages")


def pay_by_card(page: Page, number: str, *, expiry: str = "12 / 34", cvc: str = "123") -> None:
    """Type a card into the checkout's Payment Element and press the pay button, as a customer does."""
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry date (MM / YY)").fill(expiry)
    page.get_by_label("Security code (CVC)").fill(cvc)
    page.get_by_role("button", name=re.compile(r"^(Pay \d|Secure my booking)")).click()


def expect_confirmed_after_payment(page: Page) -> None:
    """Stripe sends the customer back to the return page, which says Confirmed."""
    page.wait_for_url(re.compile(r"/pay/[^/]+/return/"))
    expect(page.locator("#outcome .status")).to_have_text("Confirmed")


def emails_to(inbox, address: str, *, kind: str, timeout: float = 10.0) -> list[EmailMessage]:
    """The emails of one kind (X-Booking-Email: confirmed, cancelled …) the address has received."""

    def found():
        deliver_outbox()
        return [m for m in inbox.to(address) if m["X-Booking-Email"] == kind]

    return wait_until(found, timeout=timeout)


def email_text(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def manage_link(message: EmailMessage) -> str:
    """The booking's own page, as linked from an email."""
    match = re.search(r"https?://\S+/b/[^/\s]+/", email_text(message))
    assert match, "the email has no manage link"
    return match.group(0)


def _elements(cdp, selector: str) -> list[str]:
    """Remote handles (CDP object ids) of the elements matching *selector*, stable while the page changes."""
    found = cdp.send(
        "Runtime.evaluate", {"expression": f"Array.from(document.querySelectorAll({json.dumps(selector)}))"}
    )["result"]["objectId"]
    properties = cdp.send("Runtime.getProperties", {"objectId": found, "ownProperties": True})["result"]
    return [p["value"]["objectId"] for p in properties if p["name"].isdigit()]


def _ax_node(cdp, element: str) -> dict:
    tree = cdp.send("Accessibility.getPartialAXTree", {"objectId": element, "fetchRelatives": False})
    return tree["nodes"][0]


def _outer_html(cdp, element: str) -> str:
    return cdp.send(
        "Runtime.callFunctionOn",
        {
            "objectId": element,
            "functionDeclaration": "function () { return this.cloneNode(false).outerHTML; }",
            "returnByValue": True,
        },
    )["result"]["value"]


def controls_without_accessible_name(page: Page) -> list[str]:
    """Form controls a screen reader would announce without a name (as Chromium computes the names)."""
    cdp = page.context.new_cdp_session(page)
    try:
        unnamed = []
        for element in _elements(cdp, CONTROLS):
            ax = _ax_node(cdp, element)
            if not ax.get("ignored") and not (ax.get("name") or {}).get("value", "").strip():
                unnamed.append(_outer_html(cdp, element))
        return unnamed
    finally:
        cdp.detach()


def accessibility_problems(page: Page) -> list[str]:
    """Unnamed controls, images without alternative text, and anything but exactly one h1."""
    problems = [f"{page.url}: no accessible name: {c}" for c in controls_without_accessible_name(page)]
    for img in page.locator(
        "img:not([alt]), input[type=image]:not([alt]), [role=img]:not([aria-label])"
    ).all():
        problems.append(f"{page.url}: image without alt text: {img.evaluate('e => e.outerHTML')[:120]}")
    headings = page.locator("h1").all_inner_texts()
    if len(headings) != 1:
        problems.append(f"{page.url}: {len(headings)} h1 headings: {headings}")
    return problems


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the viewport (0 when nothing overflows)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def pay_at_stripe(stripe_api, booking):
    """Pay a held booking as the checkout does: the card confirmed at Stripe, then recorded."""
    from payments.services import checkout_prepare, payment_refresh

    now = timezone.now()
    payment = checkout_prepare(booking=booking, now=now).payment
    stripe_api.v1.payment_intents.confirm(
        payment.stripe_payment_intent_id, {"payment_method": "pm_card_visa"}
    )
    payment_refresh(payment=payment, now=now)
    booking.refresh_from_db()
    return booking


def controls_cut_off(page: Page) -> list[str]:
    """Visible links, buttons and fields sticking out past the right edge (reachable only by panning).

    Off-screen to the left is how the skip link hides until focused, so only the right edge counts.
    """
    return page.evaluate(
        """() => [...document.querySelectorAll("a, button, input, select, textarea, label")]
          .filter(e => e.offsetParent !== null && getComputedStyle(e).visibility !== "hidden")
          .filter(e => { const r = e.getBoundingClientRect();
                         return r.width > 0 && r.right > window.innerWidth + 1; })
          .map(e => `<${e.tagName.toLowerCase()}> ${(e.innerText || e.name || "").trim().slice(0, 30)}`)"""
    )


def accessible_description(page: Page, selector: str) -> str:
    """What a screen reader reads after an element's name (aria-describedby …), as Chromium computes it."""
    cdp = page.context.new_cdp_session(page)
    try:
        (element,) = _elements(cdp, selector)
        return (_ax_node(cdp, element).get("description") or {}).get("value", "")
    finally:
        cdp.detach()
