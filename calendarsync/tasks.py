"""Thin Celery tasks of calendarsync: load by id, make one service call."""
