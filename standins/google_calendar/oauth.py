"""Google OAuth 2.0: consent (refresh tokens only for `access_type=offline`), the token endpoint
(authorization code and refresh) and revocation, which also stops the access tokens a grant minted.
"""

from __future__ import annotations

import datetime as dt
import secrets
import urllib.parse
from typing import Any

from standins._base import (
    Request,
    Response,
    utcnow,
)
from standins._oauth import pkce_verified
from standins.google_calendar.records import (
    ACCESS_TOKEN_SECONDS,
    READ_SCOPES,
    WRITE_SCOPES,
    AccessToken,
    Grant,
    google_error,
    oauth_error,
    unsigned_jwt,
)


class GoogleOAuth:
    """The /o/oauth2/auth, /token and /revoke endpoints of `GoogleCalendarStandIn`."""

    def _authorize(self, request: Request) -> Response:
        query = request.query
        for name in ("client_id", "redirect_uri", "response_type", "scope"):
            if not query.get(name):
                # Google shows an error page here; it never redirects to an unverified redirect_uri.
                return Response(400, f"Error 400: invalid_request\nRequired parameter is missing: {name}")
        if query["response_type"] != "code":
            return Response(400, "Error 400: unsupported_response_type")
        answer = self._consent(query)
        separator = "&" if "?" in query["redirect_uri"] else "?"
        location = query["redirect_uri"] + separator + urllib.parse.urlencode(answer)
        return Response(302, "", {"Location": location})

    def _consent(self, query: dict[str, str]) -> dict[str, str]:
        """What the consent screen sends back to the app: a code (or an error) and the state."""
        answer: dict[str, str] = {}
        if self._deny_next:
            self._deny_next = False
            answer["error"] = "access_denied"
        else:
            email_address = query.get("login_hint") or self.default_email
            self.add_account(email_address)
            code = "4/0" + secrets.token_urlsafe(32)
            self._codes[code] = {
                "email": email_address,
                "client_id": query["client_id"],
                "redirect_uri": query["redirect_uri"],
                "scope": query["scope"],
                "offline": query.get("access_type") == "offline",
                "challenge": query.get("code_challenge"),
                "method": query.get("code_challenge_method", "plain"),
                "expires_at": utcnow() + dt.timedelta(minutes=10),
            }
            answer.update(code=code, scope=query["scope"])
        if "state" in query:
            answer["state"] = query["state"]
        return answer

    def _token(self, request: Request) -> Response:
        form = request.form()
        client_id, secret = request.client_credentials(form)
        if not client_id:
            raise oauth_error(400, "invalid_request", "Could not determine client ID from request.")
        if not secret:
            raise oauth_error(401, "invalid_client", "Unauthorized")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code = self._codes.pop(form.get("code", ""), None)
            if code is None or code["expires_at"] <= utcnow() or code["client_id"] != client_id:
                raise oauth_error(400, "invalid_grant", "Malformed auth code.")
            if form.get("redirect_uri") != code["redirect_uri"]:
                raise oauth_error(400, "redirect_uri_mismatch", "Bad Request")
            if not pkce_verified(code, form.get("code_verifier", "")):
                raise oauth_error(400, "invalid_grant", "Invalid code verifier.")
            return Response(
                200, self._issue(code["email"], client_id, code["scope"], offline=code["offline"])
            )
        if grant_type == "refresh_token":
            grant = self._grants.get(form.get("refresh_token", ""))
            if grant is None or grant.revoked:
                raise oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            if grant.client_id != client_id:
                raise oauth_error(401, "unauthorized_client", "Unauthorized")
            scope = form.get("scope") or grant.scope
            if not set(scope.split()) <= set(grant.scope.split()):
                raise oauth_error(400, "invalid_scope", "Some requested scopes were invalid.")
            return Response(200, self._issue(grant.email, client_id, scope, grant=grant))
        raise oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _issue(
        self,
        email_address: str,
        client_id: str,
        scope: str,
        *,
        offline: bool = False,
        grant: Grant | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "expires_in": ACCESS_TOKEN_SECONDS - 1,
            "scope": scope,
            "token_type": "Bearer",
        }
        if offline:
            refresh_token = "1//0" + secrets.token_urlsafe(48)
            grant = self._grants[refresh_token] = Grant(email_address, client_id, scope)
            body["refresh_token"] = refresh_token
        access_token = "ya29." + secrets.token_urlsafe(48)
        expires_at = utcnow() + dt.timedelta(seconds=ACCESS_TOKEN_SECONDS)
        self._access[access_token] = AccessToken(email_address, scope, expires_at, grant)
        body["access_token"] = access_token
        if "openid" in scope.split() or "email" in scope.split():
            now = int(utcnow().timestamp())
            body["id_token"] = unsigned_jwt(
                {"iss": self.url, "aud": client_id, "sub": email_address, "email": email_address, "iat": now}
                | {"email_verified": True, "exp": now + ACCESS_TOKEN_SECONDS}
            )
        return body

    def _revoke(self, request: Request) -> Response:
        token = request.query.get("token") or request.form().get("token", "")
        grant = self._grants.get(token)
        if grant:
            grant.revoked = True
        elif self._access.pop(token, None) is None:
            raise oauth_error(400, "invalid_token", "Token expired or revoked")
        return Response(200, {})

    def _caller(self, request: Request, *, write: bool = False) -> str:
        """The account the bearer token acts for; 401/403 in Google's words otherwise."""
        token = request.bearer_token()
        if not token:
            raise google_error(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
                "required",
                location="Authorization",
                locationType="header",
            )
        access = self._access.get(token)
        if access is None or access.expires_at <= utcnow() or (access.grant and access.grant.revoked):
            raise google_error(
                401, "Invalid Credentials", "authError", location="Authorization", locationType="header"
            )
        if not set(access.scope.split()) & (WRITE_SCOPES if write else READ_SCOPES):
            raise google_error(
                403, "Request had insufficient authentication scopes.", "insufficientPermissions"
            )
        return access.email
