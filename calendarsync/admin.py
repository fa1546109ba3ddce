"""Django admin for calendarsync."""
