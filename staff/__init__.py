"""Staff operations: the day schedule and the reports, read across every app below."""
