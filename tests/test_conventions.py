"""Rules of this codebase that no linter knows, checked so that a reviewer need not remember them.

docs/architecture.md: rows are locked only by the helpers in each app's `locks.py` (primary-key
order, once per transaction, under a lock timeout), so "what does this lock?" has one answer per app.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ("core", "inventory", "booking", "payments", "ticketing", "calendarsync", "staff")


def locking_calls(source: str) -> list[int]:
    """Line numbers of every `select_for_update` in a module's source."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and node.attr == "select_for_update"
    ]


def test_rows_are_locked_only_in_the_locks_modules():
    outside = [
        f"{path.relative_to(ROOT)}:{line}"
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if path.name != "locks.py" and "migrations" not in path.parts
        for line in locking_calls(path.read_text())
    ]
    assert outside == [], "lock through a helper in the app's locks.py instead"


def test_the_check_finds_a_lock_taken_in_a_service():
    service = "def customer_rename(pk):\n    c = Customer.objects.select_for_update().get(pk=pk)\n"
    assert locking_calls(service) == [2]
