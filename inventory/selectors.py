"""Reads of inventory: querysets and plain data prepared for views and other apps."""
