"""Helpers that separate "open a transaction" (the outermost service) from "require one is open".

Writers of the timeline and the outbox must share their caller's transaction: the whole point is that
the audit entry and the message commit or vanish together with the change they describe.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

from core.errors import TransactionRequired


def require_atomic(what: str) -> None:
    """Raise unless the default database connection is inside `transaction.atomic()`."""
    if not connection.in_atomic_block:
        raise TransactionRequired(
            f"{what} must run inside the caller's transaction (wrap the service in transaction.atomic())."
        )


@contextmanager
def service_transaction() -> Iterator[None]:
    """The transaction of one use case: commits on exit, or joins the caller's transaction if any.

    Use cases run on their own from views and tasks, and inside an outbox handler's transaction when
    one change follows another (a freed place offered to the waitlist): then both commit together
    with the message being marked delivered. The block is marked as a use case so lock helpers can
    enforce "lock once per use case" even when it is nested.
    """
    # Directly inside an outbox delivery a savepoint buys nothing: whatever the handler raises rolls
    # the whole delivery back (core.outbox.services), and it saves two round trips per handler.
    inside_delivery = connection.in_atomic_block and getattr(connection.atomic_blocks[-1], "_delivery", False)
    with transaction.atomic(savepoint=not inside_delivery):
        connection.atomic_blocks[-1]._use_case = True
        yield


def current_use_case():
    """The innermost use-case transaction block (or the outermost block if none is marked)."""
    require_atomic("current_use_case")
    blocks = connection.atomic_blocks
    return next((block for block in reversed(blocks) if getattr(block, "_use_case", False)), blocks[0])
