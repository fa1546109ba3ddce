"""The only place booking locks rows: small querysets ordered by primary key."""
