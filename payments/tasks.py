"""Thin Celery tasks of payments: load by id, make one service call."""
