"""Local stand-ins for the outside services the project talks to, for tests and the local demo."""
