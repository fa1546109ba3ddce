"""Reads of ticketing: querysets and plain data prepared for views and other apps."""
