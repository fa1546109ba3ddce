"""The Stripe stand-in, driven by the real stripe library over HTTP, and by Chromium for Stripe.js.

Webhooks go to a small HTTP endpoint here that checks every signature with
`stripe.Webhook.construct_event`, as the project's webhook view must.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe
import time_machine

from standins.stripe_server import StripeStandIn, run
from tests.clock import browser_clock_follow
from tests.conftest import wait_until

WEBHOOK_SECRET = "whsec_standin_tests"
PUBLISHABLE_KEY = "pk_test_standin"
FAILING_CARD = "pm_card_chargeCustomerFail"  # attaches, then is declined when charged


class ShopSite:
    """The project's side of Stripe: a webhook endpoint and the checkout and return pages."""

    def __init__(self, stripe_url: str) -> None:
        self.stripe_url = stripe_url
        self.deliveries: list[tuple[bytes, str]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                site.deliveries.append((body, self.headers.get("Stripe-Signature", "")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                page = site.page(urllib.parse.urlsplit(self.path).path).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self, path: str) -> str:
        if path == "/checkout":  # ?secret=<client secret of a PaymentIntent or SetupIntent>
            script = """
                const secret = new URLSearchParams(location.search).get('secret');
                const stripe = Stripe('%s');
                const elements = stripe.elements({clientSecret: secret, appearance: {theme: 'stripe'}});
                elements.create('payment').mount('#payment-element');
                document.querySelector('form').addEventListener('submit', async (event) => {
                  event.preventDefault();
                  const confirm = secret.startsWith('seti_') ? stripe.confirmSetup : stripe.confirmPayment;
                  const {error} = await confirm({elements, confirmParams: {return_url: '/return'}});
                  if (error) document.querySelector('#error').textContent = error.message;
                });"""
            body = '<form><div id="payment-element"></div><button>Pay</button><p id="error"></p></form>'
        else:  # the return_url
            script = """
                const query = new URLSearchParams(location.search);
                const secret = query.get('payment_intent_client_secret');
                if (secret) Stripe('%s').retrievePaymentIntent(secret).then(({paymentIntent}) => {
                  document.querySelector('#status').textContent = paymentIntent.status;
                });"""
            body = '<p id="status"></p>'
        return (
            f'<!doctype html><html><head><script src="{self.stripe_url}/js.stripe.com/v3/"></script></head>'
            f"<body>{body}<script>{script % PUBLISHABLE_KEY}</script></body></html>"
        )

    def event(self, event_type: str, object_id: str) -> stripe.Event:
        """The signed event of `event_type` about `object_id`, waiting for it to arrive."""

        def find() -> stripe.Event | None:
            for payload, signature in list(self.deliveries):
                event = stripe.Webhook.construct_event(payload, signature, WEBHOOK_SECRET)
                if event.type == event_type and event.data.object.id == object_id:
                    return event
            return None

        return wait_until(find, timeout=15)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Iterator[StripeStandIn]:
    with StripeStandIn.start(tmp_path_factory.mktemp("stripe")) as server:
        yield server


@pytest.fixture(scope="module")
def shop(standin) -> Iterator[ShopSite]:
    site = ShopSite(standin.url)
    standin.register_webhook(f"{site.url}/webhooks/stripe", WEBHOOK_SECRET)
    yield site
    site.stop()


@pytest.fixture(scope="module")
def client(standin) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_standin", base_addresses={"api": standin.url})


@pytest.fixture
def customer(client) -> stripe.Customer:
    return client.v1.customers.create({"email": "ada@example.com"})


def authorise(client: stripe.StripeClient, amount: int = 5000, currency: str = "eur") -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        {
            "amount": amount,
            "currency": currency,
            "capture_method": "manual",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )


def pay(client: stripe.StripeClient, amount: int, currency: str = "eur") -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        {"amount": amount, "currency": currency, "payment_method": "pm_card_visa", "confirm": True}
    )


# --- Idempotency-Key ----------------------------------------------------------------------------


def test_a_repeated_idempotency_key_replays_the_first_answer(client):
    key = str(uuid.uuid4())
    first = client.v1.customers.create({"email": "once@example.com"}, {"idempotency_key": key})
    again = client.v1.customers.create({"email": "once@example.com"}, {"idempotency_key": key})
    other = client.v1.customers.create({"email": "once@example.com"}, {"idempotency_key": str(uuid.uuid4())})

    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert other.id != first.id


def test_an_idempotency_key_reused_for_another_request_is_refused(client):
    key = str(uuid.uuid4())
    client.v1.customers.create({"email": "first@example.com"}, {"idempotency_key": key})

    with pytest.raises(stripe.IdempotencyError, match="same parameters"):
        client.v1.customers.create({"email": "second@example.com"}, {"idempotency_key": key})


def test_a_retried_declined_payment_is_not_attempted_twice(client, shop):
    params = {"amount": 900, "currency": "eur", "payment_method": FAILING_CARD, "confirm": True}
    key = str(uuid.uuid4())
    with pytest.raises(stripe.CardError) as first:
        client.v1.payment_intents.create(params, {"idempotency_key": key})
    with pytest.raises(stripe.CardError) as again:
        client.v1.payment_intents.create(params, {"idempotency_key": key})

    intent_id = first.value.error.payment_intent.id
    assert again.value.error.payment_intent.id == intent_id
    shop.event("payment_intent.payment_failed", intent_id)
    failures = client.v1.events.list({"type": "payment_intent.payment_failed", "limit": 100})
    assert [e.data.object.id for e in failures.data].count(intent_id) == 1


# --- SetupIntents -------------------------------------------------------------------------------


def test_a_confirmed_setup_intent_saves_the_card_for_off_session_payments(client, shop, customer):
    setup = client.v1.setup_intents.create(
        {
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "usage": "off_session",
            "metadata": {"booking": "42"},
            "confirm": True,
        }
    )

    assert setup.status == "succeeded"
    assert setup.metadata.to_dict() == {"booking": "42"}
    assert client.v1.payment_methods.retrieve(setup.payment_method).customer == customer.id
    saved = client.v1.payment_methods.list({"customer": customer.id})
    assert [method.id for method in saved.data] == [setup.payment_method]
    assert shop.event("setup_intent.succeeded", setup.id).data.object.status == "succeeded"

    payment = client.v1.payment_intents.create(
        {
            "amount": 2500,
            "currency": "eur",
            "customer": customer.id,
            "payment_method": setup.payment_method,
            "off_session": True,
            "confirm": True,
        }
    )
    assert payment.status == "succeeded"
    assert payment.amount_received == 2500


def test_a_setup_intent_can_be_retrieved_confirmed_and_canceled(client, shop, customer):
    setup = client.v1.setup_intents.create({"customer": customer.id})
    assert client.v1.setup_intents.retrieve(setup.id).status == "requires_payment_method"

    confirmed = client.v1.setup_intents.confirm(setup.id, {"payment_method": "pm_card_visa"})
    assert confirmed.status == "succeeded"
    assert client.v1.payment_methods.retrieve(confirmed.payment_method).customer == customer.id

    abandoned = client.v1.setup_intents.create({"customer": customer.id})
    canceled = client.v1.setup_intents.cancel(abandoned.id, {"cancellation_reason": "abandoned"})
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")
    shop.event("setup_intent.canceled", abandoned.id)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.setup_intents.cancel(setup.id)
    assert refused.value.code == "setup_intent_unexpected_state"


def test_a_declined_card_leaves_the_setup_intent_open_for_another(client, shop, customer):
    setup = client.v1.setup_intents.create({"customer": customer.id})

    with pytest.raises(stripe.CardError) as declined:
        client.v1.setup_intents.confirm(setup.id, {"payment_method": "pm_card_visa_chargeDeclined"})

    assert declined.value.code == "card_declined"
    failed = client.v1.setup_intents.retrieve(setup.id)
    assert failed.status == "requires_payment_method"
    assert failed.last_setup_error.decline_code == "generic_decline"
    shop.event("setup_intent.setup_failed", setup.id)
    assert client.v1.setup_intents.confirm(setup.id, {"payment_method": "pm_card_visa"}).status == "succeeded"


def test_a_payment_can_save_its_card_for_later(client, customer):
    payment = client.v1.payment_intents.create(
        {
            "amount": 1800,
            "currency": "eur",
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "setup_future_usage": "off_session",
            "confirm": True,
        }
    )

    assert payment.status == "succeeded"
    assert client.v1.payment_methods.retrieve(payment.payment_method).customer == customer.id


# --- amounts through authorisation and capture --------------------------------------------------


def test_an_authorisation_is_capturable_until_captured(client, shop):
    intent = authorise(client, 5000)

    assert (intent.status, intent.amount_capturable, intent.amount_received) == ("requires_capture", 5000, 0)
    event = shop.event("payment_intent.amount_capturable_updated", intent.id)
    assert event.data.object.amount_capturable == 5000

    captured = client.v1.payment_intents.capture(intent.id)
    assert (captured.status, captured.amount_capturable, captured.amount_received) == ("succeeded", 0, 5000)
    assert client.v1.charges.retrieve(captured.latest_charge).amount_captured == 5000
    assert shop.event("payment_intent.succeeded", intent.id).data.object.amount_received == 5000


def test_a_partial_capture_releases_the_remainder(client):
    intent = authorise(client, 5000)

    captured = client.v1.payment_intents.capture(intent.id, {"amount_to_capture": 3000})

    assert (captured.amount_received, captured.amount_capturable) == (3000, 0)
    charge = client.v1.charges.retrieve(captured.latest_charge)
    assert (charge.amount, charge.amount_captured, charge.amount_refunded) == (5000, 3000, 2000)


def test_an_automatic_capture_is_received_at_once(client):
    intent = pay(client, 1200)

    assert (intent.status, intent.amount_received, intent.amount_capturable) == ("succeeded", 1200, 0)
    assert client.v1.charges.retrieve(intent.latest_charge).amount_captured == 1200


# --- refunds ------------------------------------------------------------------------------------


def test_a_refund_above_the_captured_amount_is_refused(client):
    intent = client.v1.payment_intents.capture(authorise(client, 5000).id, {"amount_to_capture": 3000})

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.create({"payment_intent": intent.id, "amount": 3001})

    assert refused.value.http_status == 400
    assert refused.value.param == "amount"
    assert refused.value.user_message == "Refund amount (€30.01) is greater than charge amount (€30.00)"
    assert client.v1.refunds.create({"payment_intent": intent.id}).amount == 3000


def test_refunds_count_earlier_refunds(client):
    intent = pay(client, 10000, currency="usd")
    first = client.v1.refunds.create(
        {"payment_intent": intent.id, "amount": 4000, "reason": "requested_by_customer"}
    )
    assert (first.amount, first.reason, first.status) == (4000, "requested_by_customer", "succeeded")

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.create({"payment_intent": intent.id, "amount": 7000})
    assert refused.value.user_message == (
        "Refund amount ($70.00) is greater than unrefunded amount on charge ($60.00)"
    )

    assert client.v1.refunds.create({"payment_intent": intent.id}).amount == 6000
    with pytest.raises(stripe.InvalidRequestError) as exhausted:
        client.v1.refunds.create({"payment_intent": intent.id, "amount": 1})
    assert exhausted.value.code == "charge_already_refunded"


def test_refunds_are_announced_by_webhooks(client, shop):
    intent = pay(client, 8000)

    refund = client.v1.refunds.create({"payment_intent": intent.id, "amount": 3000})
    assert shop.event("refund.created", refund.id).data.object.payment_intent == intent.id
    charge = shop.event("charge.refunded", intent.latest_charge).data.object
    assert (charge.amount_refunded, charge.refunded) == (3000, False)

    client.v1.refunds.update(refund.id, {"metadata": {"note": "late arrival"}})
    assert shop.event("refund.updated", refund.id).data.object.metadata.note == "late arrival"


# --- cancellation, declines and parameters localstripe refused ----------------------------------


def test_canceling_an_authorisation_releases_it_and_is_announced(client, shop):
    intent = authorise(client)

    canceled = client.v1.payment_intents.cancel(intent.id, {"cancellation_reason": "requested_by_customer"})

    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "requested_by_customer")
    assert canceled.amount_capturable == 0
    assert shop.event("payment_intent.canceled", intent.id).data.object.status == "canceled"
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.cancel(intent.id)
    assert refused.value.code == "payment_intent_unexpected_state"


def test_a_declined_card_leaves_the_payment_awaiting_another_payment_method(client, shop):
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(
            {"amount": 3000, "currency": "eur", "payment_method": FAILING_CARD, "confirm": True}
        )

    assert declined.value.code == "card_declined"
    intent = client.v1.payment_intents.retrieve(declined.value.error.payment_intent.id)
    assert intent.status == "requires_payment_method"
    assert (intent.last_payment_error.code, intent.last_payment_error.decline_code) == (
        "card_declined",
        "generic_decline",
    )
    assert shop.event("payment_intent.payment_failed", intent.id).data.object.last_payment_error.code == (
        "card_declined"
    )
    retried = client.v1.payment_intents.confirm(intent.id, {"payment_method": "pm_card_visa"})
    assert (retried.status, retried.amount_received) == ("succeeded", 3000)


def test_a_payment_intent_for_the_payment_element_is_confirmed_later(client):
    intent = client.v1.payment_intents.create(
        {
            "amount": 4200,
            "currency": "eur",
            "automatic_payment_methods": {"enabled": True},
            "description": "Saturday pottery class",
        }
    )
    assert intent.status == "requires_payment_method"
    assert intent.automatic_payment_methods.enabled is True

    confirmed = client.v1.payment_intents.confirm(intent.id, {"payment_method": "pm_card_visa"})
    assert (confirmed.status, confirmed.description) == ("succeeded", "Saturday pottery class")


def test_events_are_listed_newest_first_and_by_type(client):
    first, second = authorise(client), authorise(client)
    client.v1.payment_intents.cancel(first.id)
    client.v1.payment_intents.cancel(second.id)

    listed = client.v1.events.list({"type": "payment_intent.canceled", "limit": 2})

    assert [event.data.object.id for event in listed.data] == [second.id, first.id]


# --- keys, isolation and reset ------------------------------------------------------------------


def test_a_publishable_key_reaches_only_its_own_intent(client, standin):
    intent = client.v1.payment_intents.create({"amount": 1000, "currency": "eur"})
    browser_client = stripe.StripeClient(PUBLISHABLE_KEY, base_addresses={"api": standin.url})

    with pytest.raises(stripe.AuthenticationError):
        browser_client.v1.customers.create({"email": "mallory@example.com"})
    query = urllib.parse.urlencode({"key": PUBLISHABLE_KEY, "client_secret": f"{intent.id}_secret_wrong"})
    with pytest.raises(urllib.error.HTTPError) as wrong_secret:
        urllib.request.urlopen(f"{standin.url}/v1/payment_intents/{intent.id}?{query}")
    assert wrong_secret.value.code == 404


def test_a_stand_in_started_on_a_moved_clock_signs_and_stamps_on_that_clock(tmp_path):
    new_year = datetime(2029, 12, 31, 23, 59, tzinfo=UTC)
    with time_machine.travel(new_year, tick=True), StripeStandIn.start(tmp_path) as server:
        site = ShopSite(server.url)
        server.register_webhook(f"{site.url}/webhooks/stripe", WEBHOOK_SECRET)
        client = stripe.StripeClient("sk_test_standin", base_addresses={"api": server.url})
        intent = client.v1.payment_intents.create({"amount": 1200, "currency": "eur"})
        client.v1.payment_intents.cancel(intent.id)
        event = site.event("payment_intent.canceled", intent.id)  # its signature is checked on our clock
        site.stop()
    assert abs(intent.created - new_year.timestamp()) < 60
    assert abs(event.created - new_year.timestamp()) < 60


def test_each_stand_in_keeps_its_own_data_and_can_be_reset(client, tmp_path):
    with StripeStandIn.start(tmp_path) as other:
        other_client = stripe.StripeClient("sk_test_standin", base_addresses={"api": other.url})
        customer = other_client.v1.customers.create({"email": "isolated@example.com"})

        with pytest.raises(stripe.InvalidRequestError):
            client.v1.customers.retrieve(customer.id)
        assert (tmp_path / "localstripe.pickle").exists()

        other.reset()
        with pytest.raises(stripe.InvalidRequestError):
            other_client.v1.customers.retrieve(customer.id)


def test_the_server_listens_on_loopback_only():
    with pytest.raises(ValueError, match="loopback"):
        run(host="0.0.0.0")  # noqa: S104


# --- Stripe.js in a browser ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context()
    browser_clock_follow(context)
    yield context.new_page()
    context.close()


def enter_card(page, number: str) -> None:
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry date (MM / YY)").fill("12 / 34")
    page.get_by_label("Security code (CVC)").fill("123")
    page.get_by_role("button", name="Pay").click()


@pytest.mark.browser
def test_the_payment_element_pays_and_returns_like_stripe(client, shop, page):
    intent = client.v1.payment_intents.create(
        {"amount": 1500, "currency": "eur", "automatic_payment_methods": {"enabled": True}}
    )
    page.goto(f"{shop.url}/checkout?secret={intent.client_secret}")

    enter_card(page, "4242 4242 4242 4242")
    page.wait_for_url(f"{shop.url}/return?*")

    returned = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.url).query))
    assert returned == {
        "payment_intent": intent.id,
        "payment_intent_client_secret": intent.client_secret,
        "redirect_status": "succeeded",
    }
    page.get_by_text("succeeded").wait_for()  # read back with stripe.retrievePaymentIntent
    assert client.v1.payment_intents.retrieve(intent.id).amount_received == 1500


@pytest.mark.browser
def test_the_payment_element_shows_a_decline_and_lets_the_customer_retry(client, page, shop):
    intent = client.v1.payment_intents.create(
        {"amount": 1500, "currency": "eur", "automatic_payment_methods": {"enabled": True}}
    )
    page.goto(f"{shop.url}/checkout?secret={intent.client_secret}")

    enter_card(page, "4000 0000 0000 0002")
    page.get_by_text("Your card was declined.").wait_for()
    assert page.url.startswith(f"{shop.url}/checkout")
    declined = client.v1.payment_intents.retrieve(intent.id)
    assert declined.status == "requires_payment_method"
    assert declined.last_payment_error.decline_code == "generic_decline"

    enter_card(page, "4242 4242 4242 4242")
    page.wait_for_url(f"{shop.url}/return?*")
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"


@pytest.mark.browser
def test_confirm_setup_saves_the_card_and_returns_like_stripe(client, customer, page, shop):
    setup = client.v1.setup_intents.create({"customer": customer.id, "usage": "off_session"})
    page.goto(f"{shop.url}/checkout?secret={setup.client_secret}")

    enter_card(page, "4242 4242 4242 4242")
    page.wait_for_url(f"{shop.url}/return?*")

    returned = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.url).query))
    assert (returned["setup_intent"], returned["redirect_status"]) == (setup.id, "succeeded")
    saved = client.v1.setup_intents.retrieve(setup.id)
    assert client.v1.payment_methods.retrieve(saved.payment_method).customer == customer.id


@pytest.mark.browser
def test_three_d_secure_can_fail_and_then_pass(client, page, shop):
    intent = client.v1.payment_intents.create(
        {"amount": 2600, "currency": "eur", "automatic_payment_methods": {"enabled": True}}
    )
    page.goto(f"{shop.url}/checkout?secret={intent.client_secret}")

    page.once("dialog", lambda dialog: dialog.dismiss())  # the customer fails the bank's check
    enter_card(page, "4000 0025 0000 3155")
    page.get_by_text("failed authentication").wait_for()
    shop.event("payment_intent.payment_failed", intent.id)
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"

    page.once("dialog", lambda dialog: dialog.accept())
    enter_card(page, "4000 0025 0000 3155")
    page.wait_for_url(f"{shop.url}/return?*")
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
