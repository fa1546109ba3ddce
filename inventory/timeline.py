"""One function per inventory timeline event type, called inside the service's transaction."""
