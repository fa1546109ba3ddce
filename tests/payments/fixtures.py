"""Payments against the local Stripe stand-in, through the real stripe library.

One stand-in per test process (started once, about a second); each test points the settings at it.
Webhooks are delivered only to tests that ask for them, to this process's live server.
"""

import pytest

from payments import stripe_client as client_module
from standins.stripe_server import StripeStandIn

WEBHOOK_SECRET = "whsec_test_local_secret"


@pytest.fixture(scope="session")
def stripe_standin(tmp_path_factory):
    standin = StripeStandIn.start(tmp_path_factory.mktemp("stripe"))
    yield standin
    standin.stop()


@pytest.fixture
def stripe_settings(settings, stripe_standin):
    settings.STRIPE_SECRET_KEY = "sk_test_local"
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_local"
    settings.STRIPE_API_BASE = stripe_standin.url
    settings.STRIPE_JS_URL = f"{stripe_standin.url}/js.stripe.com/v3/"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_ENABLED = True
    client_module._client.cache_clear()
    stripe_standin.reset()  # each test's database starts empty; so does its Stripe
    yield stripe_standin
    client_module._client.cache_clear()


@pytest.fixture
def stripe_webhooks(stripe_settings, live_server):
    """Stripe's events for this test go to the live server's webhook endpoint (as in production)."""
    stripe_settings.register_webhook(f"{live_server.url}/stripe/webhook", WEBHOOK_SECRET, name="tests")
    yield stripe_settings
    stripe_settings.register_webhook("http://127.0.0.1:9/nowhere", WEBHOOK_SECRET, name="tests")


@pytest.fixture
def stripe_api(stripe_settings):
    """The Stripe API as a customer's browser (or Stripe's dashboard) would touch it in these tests."""
    return client_module.stripe_client()
