"""Forms of payments: input parsing and friendly messages; the rules stay in services."""
