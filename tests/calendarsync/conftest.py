import pytest

from tests.calendarsync.helpers import salon_build


@pytest.fixture
def salon():
    return salon_build()
