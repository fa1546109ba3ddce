"""One function per ticketing timeline event type, called inside the service's transaction."""
