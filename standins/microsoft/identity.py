"""The Microsoft identity platform's v2.0 endpoints: OpenID configuration, authorize (with PKCE, nonce
and consent) and token (authorization code, rotating refresh tokens, client credentials).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import secrets
import urllib.parse
import uuid
from typing import Any

from standins._base import (
    Request,
    Response,
    utcnow,
)
from standins._oauth import pkce_verified
from standins.microsoft.records import ACCESS_TOKEN_SECONDS, AccessToken, Grant, aad_error, b64_json


class IdentityPlatform:
    """The /{tenant}/oauth2/v2.0/ endpoints of `MicrosoftStandIn`; errors are AADSTS-style JSON."""

    def _issuer(self, tenant: str) -> str:
        if tenant.lower() in ("common", "organizations", "consumers"):
            return f"{self.url}/{{tenantid}}/v2.0"
        return f"{self.url}/{self.tenant_id}/v2.0"

    def _openid_configuration(self, request: Request, tenant: str) -> Response:
        base = f"{self.url}/{tenant}"
        return Response(
            200,
            {
                "issuer": self._issuer(tenant),
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "response_modes_supported": ["query", "form_post"],
                "response_types_supported": ["code"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "subject_types_supported": ["pairwise"],
                "msgraph_host": "graph.microsoft.com",
            },
        )

    def _authorize(self, request: Request, tenant: str) -> Response:
        query = request.query
        for name in ("client_id", "redirect_uri", "scope"):
            if not query.get(name):
                # Like Microsoft: a broken request gets an error page, never a redirect.
                return Response(400, f"AADSTS900144: The request must contain the parameter '{name}'.")
        answer = self._consent(query)
        if query.get("response_mode") == "form_post":
            fields = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in answer.items()
            )
            action = html.escape(query["redirect_uri"])
            page = (
                '<html><body onload="document.forms[0].submit()">'
                f'<form method="post" action="{action}">{fields}</form></body></html>'
            )
            return Response(200, page, {"Content-Type": "text/html; charset=utf-8"})
        separator = "&" if "?" in query["redirect_uri"] else "?"
        location = query["redirect_uri"] + separator + urllib.parse.urlencode(answer)
        return Response(302, "", {"Location": location})

    def _consent(self, query: dict[str, str]) -> dict[str, str]:
        """What the sign-in page sends back to the app: a code (or an error) and the state."""
        answer: dict[str, str] = {}
        if query.get("response_type") != "code":
            answer.update(error="unsupported_response_type", error_description="AADSTS70005: response_type")
        elif self._deny_next:
            self._deny_next = False
            answer.update(error="access_denied", error_description="AADSTS65004: User declined to consent.")
        else:
            user = self._user(query.get("login_hint") or self.default_email)
            code = "0.A" + secrets.token_urlsafe(64)
            self._codes[code] = {
                "oid": user.oid,
                "client_id": query["client_id"],
                "redirect_uri": query["redirect_uri"],
                "scope": query["scope"],
                "nonce": query.get("nonce"),
                "challenge": query.get("code_challenge"),
                "method": query.get("code_challenge_method", "plain"),
                "expires_at": utcnow() + dt.timedelta(minutes=10),
            }
            answer.update(code=code, session_state=str(uuid.uuid4()))
        if "state" in query:
            answer["state"] = query["state"]
        return answer

    def _token(self, request: Request, tenant: str) -> Response:
        form = request.form()
        client_id, secret = request.client_credentials(form)
        if not client_id:
            raise aad_error(400, "invalid_request", 900144, "The request body must contain: 'client_id'.")
        if not secret:
            raise aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code_value = form.get("code", "")
            if code_value in self._redeemed:
                raise aad_error(
                    400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed."
                )
            code = self._codes.pop(code_value, None)
            if code is None or code["expires_at"] <= utcnow() or code["client_id"] != client_id:
                raise aad_error(
                    400, "invalid_grant", 70000, "The provided value for the 'code' parameter is not valid."
                )
            self._redeemed.add(code_value)
            if form.get("redirect_uri") != code["redirect_uri"]:
                raise aad_error(
                    400, "invalid_grant", 50148, "The redirect_uri does not match the one authorized."
                )
            if not pkce_verified(code, form.get("code_verifier", "")):
                raise aad_error(
                    400,
                    "invalid_grant",
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied.",
                )
            scope = form.get("scope") or code["scope"]
            return Response(200, self._issue(code["oid"], client_id, scope, tenant, code["nonce"], form))
        if grant_type == "refresh_token":
            grant = self._grants.get(form.get("refresh_token", ""))
            if grant is None:
                raise aad_error(
                    400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
                )
            if grant.revoked:
                raise aad_error(
                    400,
                    "invalid_grant",
                    50173,
                    "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
                )
            if grant.client_id != client_id:
                raise aad_error(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
            scope = form.get("scope") or grant.scope
            return Response(200, self._issue(grant.oid, client_id, scope, tenant, None, form))
        if grant_type == "client_credentials":
            scope = form.get("scope", "")
            if not scope.endswith("/.default") or " " in scope:
                raise aad_error(
                    400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid."
                )
            token = secrets.token_urlsafe(64)
            expires_at = utcnow() + dt.timedelta(seconds=ACCESS_TOKEN_SECONDS)
            self._access[token] = AccessToken(None, client_id, scope, expires_at)
            seconds = ACCESS_TOKEN_SECONDS - 1
            body = {
                "token_type": "Bearer",
                "expires_in": seconds,
                "ext_expires_in": seconds,
                "access_token": token,
            }
            return Response(200, body)
        raise aad_error(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant_type}'.",
        )

    def _issue(
        self, oid: str, client_id: str, scope: str, tenant: str, nonce: str | None, form: dict[str, str]
    ) -> dict[str, Any]:
        requested = scope.split()
        seconds = ACCESS_TOKEN_SECONDS - 1
        body: dict[str, Any] = {
            "token_type": "Bearer",
            # The identity platform never echoes offline_access, and always grants profile with openid.
            "scope": " ".join(s for s in requested if s != "offline_access"),
            "expires_in": seconds,
            "ext_expires_in": seconds,
        }
        token = secrets.token_urlsafe(64)
        expires_at = utcnow() + dt.timedelta(seconds=ACCESS_TOKEN_SECONDS)
        self._access[token] = AccessToken(oid, client_id, body["scope"], expires_at)
        body["access_token"] = token
        if "offline_access" in requested:
            refresh_token = "0.A" + secrets.token_urlsafe(96)
            self._grants[refresh_token] = Grant(oid, client_id, scope)
            body["refresh_token"] = refresh_token
        user = self._users[oid]
        if "openid" in requested:
            now = int(utcnow().timestamp())
            claims = {
                "aud": client_id,
                "iss": f"{self.url}/{self.tenant_id}/v2.0",
                "iat": now,
                "nbf": now,
                "exp": now + ACCESS_TOKEN_SECONDS,
                "name": user.name,
                "oid": user.oid,
                "preferred_username": user.email,
                "sub": hashlib.sha256(f"{user.oid}{client_id}".encode()).hexdigest()[:43],
                "tid": self.tenant_id,
                "ver": "2.0",
            }
            if nonce:
                claims["nonce"] = nonce
            # msal decodes id_token claims without verifying them, so an unsigned token is enough.
            body["id_token"] = f"{b64_json({'alg': 'none', 'typ': 'JWT'})}.{b64_json(claims)}."
        if form.get("client_info") == "1":
            body["client_info"] = b64_json({"uid": user.oid, "utid": self.tenant_id})
        return body
