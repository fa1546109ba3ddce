"""One function per calendarsync timeline event type, called inside the service's transaction."""
