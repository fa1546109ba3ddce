"""A local Microsoft identity platform (v2.0 endpoints) and Microsoft Graph calendar, over TLS.

msal only accepts https authorities, so the stand-in serves TLS with a certificate made at start for
127.0.0.1; `standin.ca_cert` is its path. The real clients talk to it unchanged:

    session = standin.session()        # requests.Session(verify=ca_cert, trust_env=False)
    app = msal.ConfidentialClientApplication(client_id, client_credential=secret,
        authority=standin.authority, validate_authority=False, http_client=session)
    session.get(f"{standin.graph_base}/me/calendars", headers={"Authorization": f"Bearer {token}"})

(`trust_env=False` matters: REQUESTS_CA_BUNDLE in the environment would otherwise override `verify`.)

What a test can rely on (each deliberately as Microsoft does it):
- the authorization-code flow with PKCE and nonce (`response_mode` query: a 302; form_post: an
  auto-submitting form, as msal recommends), refresh tokens that rotate (old ones stay valid
  until revoked), client_credentials for `/.default` scopes; errors are AADSTS-style JSON
  (`invalid_grant` with `error_codes`), a revoked user answers AADSTS50173;
- Graph errors are `{"error": {"code", "message", "innerError"}}`: `InvalidAuthenticationToken`
  (401), `ErrorItemNotFound` (404), `RequestBodyRead` for unknown event properties (400);
- event times come back in UTC with 7-digit fractions unless `Prefer: outlook.timezone="<IANA>"`;
- a create that repeats a `transactionId` returns the event made the first time;
- `calendarView/delta` pages by `Prefer: odata.maxpagesize`, follows `@odata.nextLink` to an
  `@odata.deltaLink`, and reports deletions and events that left the window as `@removed`;
- subscriptions are refused unless the endpoint echoes `validationToken` as text/plain within 10 s;
  changes POST `{"value": [...]}` with the subscription's clientState.

Knowingly simplified: no recurring events, attendees or shared mailboxes; `$filter`, `$orderby`,
`$search` are refused rather than ignored (so code relying on them fails loudly), `$select` is
ignored; Windows time-zone names are not understood (IANA only); all-day events are evaluated
against windows in UTC; tokens are opaque strings and id_tokens are unsigned; notification URLs may be
http:// (Graph demands https); no lifecycle notifications.

The package: `server` (routes, state, control methods), `identity` (sign-in and tokens), `calendars`
(Graph calendars, events, calendarView and delta), `subscriptions` (change notifications), `records`
(what it keeps and the error shapes).
"""

from standins.microsoft.records import GRAPH_SCOPE, aad_error, graph_error
from standins.microsoft.server import MicrosoftStandIn

__all__ = ["GRAPH_SCOPE", "MicrosoftStandIn", "aad_error", "graph_error"]
