"""Named extension points: a lower app asks, higher apps answer, and no import goes upward.

An app lower in the dependency order (inventory's offering page) calls `hook_results(name, ...)`;
an app above it (payments, describing its plan) registers an answer with `@hook(name)` in its
AppConfig.ready(). The lower app never imports the higher one.
"""

from collections import defaultdict
from collections.abc import Callable
from typing import Any

_hooks: dict[str, list[Callable[..., Any]]] = defaultdict(list)


def hook(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        if func not in _hooks[name]:
            _hooks[name].append(func)
        return func

    return register


def hook_results(name: str, *args: Any, **kwargs: Any) -> list[Any]:
    """Every registered answer to *name*, in registration order (None answers dropped)."""
    return [result for func in _hooks[name] if (result := func(*args, **kwargs)) is not None]
