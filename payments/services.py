"""Writes of payments: keyword-only `<entity>_<verb>` functions that open the transaction."""
