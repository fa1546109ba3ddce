from datetime import timedelta

import pytest
from django.utils import timezone


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def soon(yoga, now):
    """The yoga class in three days, and its later date in ten (somewhere to move to)."""
    for key, days in (("session", 3), ("later", 10)):
        session = yoga[key]
        session.starts_at, session.ends_at = now + timedelta(days=days), now + timedelta(days=days, hours=1)
        session.save()
    return yoga
