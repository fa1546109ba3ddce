"""Writes of calendarsync: keyword-only `<entity>_<verb>` functions that open the transaction."""
