"""Forms of ticketing: input parsing and friendly messages; the rules stay in services."""
