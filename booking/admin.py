"""Django admin for booking."""
