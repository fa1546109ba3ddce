"""Reads of payments: querysets and plain data prepared for views and other apps."""
