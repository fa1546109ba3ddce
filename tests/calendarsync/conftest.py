import pytest
import time_machine

from tests.calendarsync.helpers import NOW, salon_build


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
