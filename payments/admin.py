"""Django admin for payments."""
