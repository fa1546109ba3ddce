"""Local stand-ins for the outside services the project talks to, for tests and the local demo.

Development and test infrastructure, not part of the product: `make run` and the tests start them
(Stripe, Google Calendar, Microsoft Graph, an SMTP mailbox, CalDAV), the Docker image leaves them out,
and import-linter keeps them apart from the apps in both directions.
"""
