"""Writes of ticketing: keyword-only `<entity>_<verb>` functions that open the transaction."""
