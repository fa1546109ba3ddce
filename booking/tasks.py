"""Thin Celery tasks of booking: load by id, make one service call."""
