"""The only place ticketing locks rows: small querysets ordered by primary key."""
