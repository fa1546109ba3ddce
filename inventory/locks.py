"""The only place inventory locks rows: small querysets ordered by primary key."""
