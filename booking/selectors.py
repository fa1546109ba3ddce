"""Reads of booking: querysets and plain data prepared for views and other apps."""
