"""Outbox handlers of inventory, registered when the app is ready."""
