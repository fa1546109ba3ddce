"""Tables of ticketing; integrity rules live here as database constraints."""
