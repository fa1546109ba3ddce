"""Sending email over one kept-open connection per process.

Opening an SMTP connection (TCP, EHLO, STARTTLS with a TLS handshake, AUTH) costs more than sending
one message over it; on sale day the worker sends two emails per booking. So each process keeps one
connection open and sends everything through it. A connection the server closed while idle (or a
change of the email settings) is noticed on the next send: the message goes again once over a fresh
connection, and an error after that is the caller's (the outbox retries it).
"""

from __future__ import annotations

import contextlib
import smtplib
import threading

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

_lock = threading.Lock()
_connection = None
_made_with: tuple | None = None  # the settings the open connection was made with


def _settings_now() -> tuple:
    return (
        settings.EMAIL_BACKEND,
        settings.EMAIL_HOST,
        settings.EMAIL_PORT,
        settings.EMAIL_HOST_USER,
        settings.EMAIL_USE_TLS,
        settings.EMAIL_USE_SSL,
    )


def _fresh():
    global _connection, _made_with
    if _connection is not None:
        with contextlib.suppress(smtplib.SMTPException, OSError):  # it was already gone
            _connection.close()
    _connection, _made_with = get_connection(fail_silently=False), _settings_now()
    _connection.open()
    return _connection


def mail_send(message: EmailMessage) -> None:
    """Send *message* over this process's open connection, reconnecting once if it went stale."""
    with _lock:
        connection = _connection if _made_with == _settings_now() else _fresh()
        try:
            connection.send_messages([message])
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            # Gone while idle. An answer the server gave (a refused recipient, 4xx) is not retried
            # here: the outbox retries it with back-off.
            _fresh().send_messages([message])
