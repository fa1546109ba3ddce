"""Django admin for ticketing."""
