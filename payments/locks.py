"""The only place payments locks rows: small querysets ordered by primary key."""
