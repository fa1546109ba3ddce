"""Outbox handlers of calendarsync, registered when the app is ready."""
