"""When something fails, visitors get the site's own page, never a traceback."""

import pytest
from django.db import connections
from django.test import RequestFactory

from core.views import server_error


@pytest.mark.django_db(transaction=True)
def test_a_database_outage_is_a_be_right_back_page_with_retry_after(client, settings):
    settings.DEBUG = True  # as under `make run`: still the friendly page, not Django's debug page
    database = connections["default"]
    working = dict(database.settings_dict)
    database.close()
    database.settings_dict.update(HOST="127.0.0.1", PORT="9")  # nothing listens: the database is "down"
    try:
        response = client.get("/")
    finally:
        database.close()
        database.settings_dict.update(working)
    page = response.content.decode()
    assert (response.status_code, response["Retry-After"]) == (503, "30")
    assert "<h1>We&#x27;ll be right back</h1>" in page and settings.BUSINESS_NAME in page
    assert "Traceback" not in page and "OperationalError" not in page and "port 9" not in page
    assert "script-src 'self'" in response["Content-Security-Policy"]  # the outage page is covered too


def test_an_unexpected_error_shows_the_sites_own_page(settings):
    response = server_error(RequestFactory().get("/anything/"))
    page = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in page and settings.BUSINESS_NAME in page
    assert settings.SUPPORT_EMAIL in page


@pytest.mark.django_db
def test_every_answer_carries_the_content_security_policy_with_stripes_origins(client, settings):
    settings.STRIPE_JS_URL = "https://js.stripe.com/v3/"
    settings.STRIPE_API_BASE = ""
    for path in ("/", "/no-such-page/", "/healthz"):
        policy = dict(
            directive.strip().split(" ", 1)
            for directive in client.get(path)["Content-Security-Policy"].split(";")
        )
        assert policy["script-src"] == "'self' https://js.stripe.com", path
        assert policy["style-src"] == "'self'" and policy["object-src"] == "'none'"
        assert policy["connect-src"] == "'self' https://api.stripe.com"
        assert policy["frame-ancestors"] == "'self'"
