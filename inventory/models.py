"""Tables of inventory; integrity rules live here as database constraints."""
