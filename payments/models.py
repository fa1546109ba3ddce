"""Tables of payments; integrity rules live here as database constraints."""
