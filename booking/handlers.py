"""Outbox handlers of booking, registered when the app is ready."""
