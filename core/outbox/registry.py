"""Who listens to which outbox topic.

Apps subscribe in their `handlers.py`, imported from `AppConfig.ready()`, so the registry is complete
in every process (web, worker, beat) before the first message is written. A handler is called as
`handler(message, now=...)` inside a transaction that holds the message's row lock: its database
writes commit together with "delivered", and it must be idempotent for anything it does outside
the database (use `message.pk` as the idempotency key), because a crash after an external call but
before the commit runs it again.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.outbox.models import OutboxMessage

HandlerFunc = Callable[..., None]

DEFAULT_MAX_ATTEMPTS = 12


@dataclass(frozen=True)
class Handler:
    name: str
    topic: str
    func: HandlerFunc
    max_attempts: int
    wanted: Callable[[dict], bool] | None = None  # no message is written for a payload it says no to

    def __call__(self, message: "OutboxMessage", *, now: datetime) -> None:
        self.func(message, now=now)


_by_topic: dict[str, list[Handler]] = {}
_by_name: dict[str, Handler] = {}


def outbox_handler(
    topic: str,
    *,
    name: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    wanted: Callable[[dict], bool] | None = None,
) -> Callable[[HandlerFunc], HandlerFunc]:
    """Subscribe the decorated function to *topic*.

    *name* is stored on every message row and must stay stable across deploys; it defaults to the
    function's dotted path. *wanted*, given the payload, says whether the handler has anything to do
    with it: a message it would take, lock, run for nothing and mark delivered is not written at all.
    """

    def register(func: HandlerFunc) -> HandlerFunc:
        handler = Handler(
            name=name or f"{func.__module__}.{func.__qualname__}",
            topic=topic,
            func=func,
            max_attempts=max_attempts,
            wanted=wanted,
        )
        existing = _by_name.get(handler.name)
        if existing is not None and existing.func is not func:
            # Re-importing the same module is harmless; two functions under one name would be a bug.
            if (existing.func.__module__, existing.func.__qualname__) != (func.__module__, func.__qualname__):
                raise ValueError(f"Outbox handler name {handler.name!r} is already taken.")
            _by_topic[existing.topic].remove(existing)
        _by_name[handler.name] = handler
        _by_topic.setdefault(topic, []).append(handler)
        return func

    return register


def handlers_for_topic(topic: str) -> list[Handler]:
    return list(_by_topic.get(topic, ()))


def handler_get(name: str) -> Handler | None:
    return _by_name.get(name)
