"""Forms of calendarsync: input parsing and friendly messages; the rules stay in services."""
