"""Forms of booking: input parsing and friendly messages; the rules stay in services."""
