"""Google Calendar push notifications: watch channels that send a `sync` ping first, then header-only
`exists` notifications on every change, until stopped or expired (at most a week).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import urllib.parse

from standins._base import (
    UTC,
    BadRequest,
    Request,
    Response,
    utcnow,
)
from standins.google_calendar.records import CHANNEL_MAX, Channel, google_error


class GooglePush:
    """The events/watch and channels/stop endpoints of `GoogleCalendarStandIn`."""

    def _events_watch(self, request: Request, calendar_id: str) -> Response:
        calendar = self._calendar(self._caller(request), calendar_id)
        body = request.json()
        for name in ("id", "type", "address"):
            if not body.get(name):
                raise BadRequest(f"Missing required field: {name}", "required")
        if body["type"] not in ("web_hook", "webhook"):
            raise BadRequest(f"Invalid value for: type ({body['type']})", "invalid")
        if body["id"] in self._channels:
            raise BadRequest(f"Channel id {body['id']} not unique", "channelIdNotUnique")
        longest = utcnow() + CHANNEL_MAX
        expiration = longest
        if body.get("expiration"):
            try:
                asked = dt.datetime.fromtimestamp(int(body["expiration"]) / 1000, UTC)
            except (TypeError, ValueError, OverflowError) as exc:
                raise BadRequest("Invalid value for: expiration (milliseconds since the epoch)") from exc
            expiration = min(asked, longest)
        channel = Channel(
            body["id"], calendar.resource_id, calendar.id, body["address"], body.get("token"), expiration
        )
        self._channels[channel.id] = channel
        self._push(channel, "sync")
        answer = {
            "kind": "api#channel",
            "id": channel.id,
            "resourceId": channel.resource_id,
            "resourceUri": self._resource_uri(calendar.id),
            "expiration": str(int(expiration.timestamp() * 1000)),
        }
        if channel.token is not None:
            answer["token"] = channel.token
        return Response(200, answer)

    def _resource_uri(self, calendar_id: str) -> str:
        return f"{self.api_endpoint}calendars/{urllib.parse.quote(calendar_id)}/events?alt=json"

    def _push(self, channel: Channel, state: str) -> None:
        if channel.expiration <= utcnow():
            del self._channels[channel.id]
            return
        channel.messages += 1
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": email.utils.format_datetime(channel.expiration, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": self._resource_uri(channel.calendar_id),
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel.messages),
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        self.notify(channel.address, headers=headers)

    def _channels_stop(self, request: Request) -> Response:
        self._caller(request)
        body = request.json()
        channel = self._channels.get(body.get("id", ""))
        if channel is None or channel.resource_id != body.get("resourceId"):
            raise google_error(
                404, f"Channel '{body.get('id')}' not found for project 'stand-in'", "notFound"
            )
        del self._channels[channel.id]
        return Response(204)
