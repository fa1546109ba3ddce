"""Outbox handlers of payments, registered when the app is ready."""
