"""Reads of calendarsync: querysets and plain data prepared for views and other apps."""
