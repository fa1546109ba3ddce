"""One function per booking timeline event type, called inside the service's transaction."""
