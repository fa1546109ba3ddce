"""Outbox handlers of ticketing, registered when the app is ready."""
