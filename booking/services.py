"""Writes of booking: keyword-only `<entity>_<verb>` functions that open the transaction."""
