"""Tables of booking; integrity rules live here as database constraints."""
