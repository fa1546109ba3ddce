"""Helpers that separate "open a transaction" (the outermost service) from "require one is open".

Writers of the timeline and the outbox must share their caller's transaction: the whole point is that
the audit entry and the message commit or vanish together with the change they describe.
"""

from django.db import connection

from core.errors import TransactionRequired


def require_atomic(what: str) -> None:
    """Raise unless the default database connection is inside `transaction.atomic()`."""
    if not connection.in_atomic_block:
        raise TransactionRequired(
            f"{what} must run inside the caller's transaction (wrap the service in transaction.atomic())."
        )
