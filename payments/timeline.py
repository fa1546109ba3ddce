"""One function per payments timeline event type, called inside the service's transaction."""
