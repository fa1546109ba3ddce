"""Django admin for inventory."""
