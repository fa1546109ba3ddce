"""The only place calendarsync locks rows: small querysets ordered by primary key."""
