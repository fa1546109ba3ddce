"""Tables of calendarsync; integrity rules live here as database constraints."""
