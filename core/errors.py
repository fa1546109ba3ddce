"""Exceptions every app shares.

`ApplicationError` is an anticipated failure whose message is safe to show to a customer or a member
of staff ("This slot was just taken"). Interfaces (views, admin actions, tasks) catch it and render
the message; anything else is a bug and goes to the logs.
"""


class ApplicationError(Exception):
    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra or {}

    def __str__(self) -> str:
        return self.message


class TransactionRequired(RuntimeError):
    """A helper that must share its caller's transaction was called outside one (a programming error)."""
