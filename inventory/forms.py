"""Forms of inventory: input parsing and friendly messages; the rules stay in services."""
