"""Adapters to the calendar providers: each speaks its provider's API through the real client library
and hands back provider-neutral changes (see base.py). Nothing here touches the database."""
