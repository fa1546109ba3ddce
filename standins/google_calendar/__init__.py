"""A local Google Calendar API v3 and Google OAuth 2.0, for tests and the offline demo.

The real clients talk to it unchanged: google-api-python-client through
`build("calendar", "v3", credentials=..., client_options={"api_endpoint": standin.api_endpoint})`,
google-auth refreshing against `standin.token_uri`, google-auth-oauthlib's `Flow` against
`standin.auth_uri` / `standin.token_uri` (oauthlib refuses plain-HTTP token endpoints unless
`OAUTHLIB_INSECURE_TRANSPORT=1` is set; google-auth does not mind).

What a test can rely on (each deliberately as Google does it):
- errors arrive in Google's JSON format, so `googleapiclient.errors.HttpError` carries the status and
  `error_details[0]["reason"]` (`duplicate`, `notFound`, `deleted`, `fullSyncRequired`, `authError`…);
- refresh tokens are issued only for `access_type=offline`; a revoked one answers `invalid_grant`, and
  the access tokens it minted stop working too;
- a client-chosen event id must be 5–1024 base32hex characters and stays taken after deletion (409);
- deleting marks the event `cancelled`; incremental sync (`syncToken`) returns every change since the
  token, cancelled ones included, and refuses `timeMin`/`timeMax`/`orderBy`… next to a sync token (400);
- a stale or expired sync token answers 410 `fullSyncRequired`;
- watched calendars push header-only notifications: `sync` first, then `exists` on every change.

Knowingly simplified: no recurring events (`recurrence` is stored, never expanded; `singleEvents` is
accepted and ignored), no attendees' calendars or sharing (a token sees only its own account's
calendars), no `q`/`updatedMin` filtering, unsigned id_tokens, channels accept http:// addresses
(Google demands https), every consent returns a refresh token (Google only does on first consent or
`prompt=consent`), channel lifetime is capped at one week.

The package: `server` (routes, state, control methods), `oauth` (consent and tokens), `events`
(calendars, events, sync tokens, free/busy), `push` (watch channels), `records` (what it keeps and the
error shapes).
"""

from standins.google_calendar.records import CALENDAR_SCOPE, google_error, oauth_error
from standins.google_calendar.server import GoogleCalendarStandIn

__all__ = ["CALENDAR_SCOPE", "GoogleCalendarStandIn", "google_error", "oauth_error"]
