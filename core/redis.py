import functools

import redis
from django.conf import settings


@functools.cache
def redis_client() -> redis.Redis:
    """The app's Redis connection pool (short timeouts: callers degrade rather than hang)."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
