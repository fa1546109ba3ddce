from collections.abc import Iterator

import pytest
import time_machine

from standins.google_calendar import GoogleCalendarStandIn
from standins.microsoft import MicrosoftStandIn
from tests.calendarsync.helpers import NOW, STAFF, salon_build


@pytest.fixture(autouse=True)
def salon_week():
    """Every clock in this process reads the week the salon tests book (from `helpers.NOW`, ticking).

    Tests hand `NOW` to what they call themselves, but the Celery worker thread, the live server and
    the in-process Google and Graph stand-ins read the clock on their own: a sync started by a push
    notification asks for busy time from the real today onwards, so on the real clock a busy Wednesday
    of December 2026 stops counting once that Wednesday has passed.
    """
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def salon():
    return salon_build()


@pytest.fixture
def google(settings, monkeypatch) -> Iterator[GoogleCalendarStandIn]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the stand-in's token endpoint is plain http
    with GoogleCalendarStandIn.start(default_email=STAFF) as standin:
        settings.GOOGLE_CLIENT_ID = "booking.apps.googleusercontent.com"
        settings.GOOGLE_CLIENT_SECRET = "secret"
        settings.GOOGLE_AUTH_URI = standin.auth_uri
        settings.GOOGLE_TOKEN_URI = standin.token_uri
        settings.GOOGLE_CALENDAR_API_ENDPOINT = standin.api_endpoint
        yield standin


@pytest.fixture
def microsoft(settings) -> Iterator[MicrosoftStandIn]:
    with MicrosoftStandIn.start(default_email=STAFF) as standin:
        settings.MICROSOFT_CLIENT_ID = "booking-app"
        settings.MICROSOFT_CLIENT_SECRET = "client-secret"
        settings.MICROSOFT_AUTHORITY = standin.authority
        settings.MICROSOFT_GRAPH_BASE = standin.graph_base
        settings.MICROSOFT_CA_BUNDLE = standin.ca_cert
        yield standin
