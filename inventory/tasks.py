"""Thin Celery tasks of inventory: load by id, make one service call."""
