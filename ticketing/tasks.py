"""Thin Celery tasks of ticketing: load by id, make one service call."""
