"""What the Google and Microsoft stand-ins share as OAuth 2.0 providers.

PKCE (RFC 7636) is checked the same way by both; the control methods a test uses to age tokens or
decline consent act on the same state (`_access` tokens with `expires_at`, the `_deny_next` flag).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets

from standins._base import utcnow


def pkce_verified(code: dict, verifier: str) -> bool:
    """Whether `verifier` answers the authorization code's challenge (`plain` or `S256`), if it has one."""
    challenge, method = code["challenge"], code["method"]
    if not challenge:
        return True
    if method == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        verifier = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return secrets.compare_digest(verifier, challenge)


class TokenControls:
    """Control methods of both identity stand-ins: what a test does to their tokens and consent."""

    def expire_access_tokens(self) -> None:
        """Expire every access token now; the API then answers 401 and the client must refresh."""
        with self.lock:
            past = utcnow() - dt.timedelta(seconds=1)
            for access in self._access.values():
                access.expires_at = past

    def deny_next_consent(self) -> None:
        """The next consent screen (sign-in) is declined: the redirect carries `error=access_denied`."""
        with self.lock:
            self._deny_next = True
