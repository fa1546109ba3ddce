"""Writes of inventory: keyword-only `<entity>_<verb>` functions that open the transaction."""
