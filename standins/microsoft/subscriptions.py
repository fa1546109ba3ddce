"""Microsoft Graph change subscriptions: created only after the receiver echoes `validationToken`,
renewed up to Graph's limit for Outlook events, and notified with the subscription's clientState.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
import uuid
from typing import Any

from standins._base import (
    UTC,
    Request,
    Response,
    http_post,
    utcnow,
)
from standins.microsoft.records import (
    CHANGE_TYPES,
    RESOURCE_PATTERN,
    SUBSCRIPTION_MAX,
    Subscription,
    graph_error,
    graph_stamp,
)


class GraphSubscriptions:
    """The /v1.0/subscriptions endpoints of `MicrosoftStandIn`."""

    def _render_subscription(self, subscription: Subscription) -> dict[str, Any]:
        return {
            "@odata.context": f"{self.graph_base}/$metadata#subscriptions/$entity",
            "id": subscription.id,
            "resource": subscription.resource,
            "applicationId": subscription.application_id,
            "changeType": subscription.change_types,
            "clientState": subscription.client_state,
            "notificationUrl": subscription.notification_url,
            "expirationDateTime": graph_stamp(subscription.expiration),
            "creatorId": subscription.owner,
            "latestSupportedTlsVersion": "v1_2",
        }

    def _expiration(self, value: Any) -> dt.datetime:
        try:
            expiration = dt.datetime.fromisoformat(value)
        except (TypeError, ValueError) as exc:
            raise graph_error(
                400, "InvalidRequest", "expirationDateTime is required and must be a date."
            ) from exc
        expiration = expiration if expiration.tzinfo else expiration.replace(tzinfo=UTC)
        now = utcnow()
        if expiration <= now or expiration > now + SUBSCRIPTION_MAX:
            raise graph_error(
                400,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: BadRequest; Reason: Subscription expiration can "
                f"only be {SUBSCRIPTION_MAX.total_seconds() // 60:.0f} minutes in the future.]",
            )
        return expiration

    def _subscription(self, request: Request, subscription_id: str) -> Subscription:
        access = self._token_for(request)
        subscription = self._subscriptions.get(subscription_id)
        if (
            subscription is None
            or subscription.expiration <= utcnow()
            or subscription.application_id != access.client_id
        ):
            raise graph_error(404, "ResourceNotFound", "The object was not found.")
        return subscription

    def _subscriptions_create(self, request: Request) -> Response:
        body = request.json()
        with self.lock:
            match = RESOURCE_PATTERN.fullmatch(body.get("resource") or "")
            if match is None:
                raise graph_error(
                    400, "InvalidRequest", f"Resource '{body.get('resource')}' is not supported."
                )
            who = f"users/{match['user']}" if match["user"] else "me"
            user = self._mailbox(request, who)
            calendar_id = self._calendar(user, None).id if match["default"] else match["calendar"]
            if calendar_id:
                self._calendar(user, calendar_id)
            change_types = body.get("changeType") or ""
            if not change_types or not set(change_types.split(",")) <= CHANGE_TYPES:
                raise graph_error(400, "InvalidRequest", f"Invalid changeType '{change_types}'.")
            url = body.get("notificationUrl") or ""
            if not url.startswith(("http://", "https://")):
                raise graph_error(400, "InvalidRequest", "notificationUrl must be an http(s) URL.")
            if len(body.get("clientState") or "") > 128:
                raise graph_error(400, "InvalidRequest", "clientState must be at most 128 characters.")
            expiration = self._expiration(body.get("expirationDateTime"))
            application_id = self._token_for(request).client_id
        # Graph proves the receiver wants notifications before it creates anything.
        validation_token = (
            f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        )
        separator = "&" if "?" in url else "?"
        status, content_type, text = http_post(
            f"{url}{separator}{urllib.parse.urlencode({'validationToken': validation_token})}",
            body=b"",
            headers={"Content-Type": "text/plain; charset=utf-8"},
            timeout=10,
        )
        if status != 200 or not content_type.startswith("text/plain") or text != validation_token:
            raise graph_error(
                400,
                "ValidationError",
                "Subscription validation request failed. Notification endpoint must respond with 200 OK "
                "to validation request.",
            )
        with self.lock:
            subscription = Subscription(
                str(uuid.uuid4()),
                body["resource"],
                user.oid,
                calendar_id,
                change_types,
                url,
                body.get("clientState"),
                expiration,
                application_id,
            )
            self._subscriptions[subscription.id] = subscription
            return Response(201, self._render_subscription(subscription))

    def _subscriptions_list(self, request: Request) -> Response:
        access = self._token_for(request)
        now = utcnow()
        value = [
            self._render_subscription(s)
            for s in self._subscriptions.values()
            if s.application_id == access.client_id and s.expiration > now
        ]
        return Response(200, {"@odata.context": f"{self.graph_base}/$metadata#subscriptions", "value": value})

    def _subscriptions_get(self, request: Request, subscription_id: str) -> Response:
        return Response(200, self._render_subscription(self._subscription(request, subscription_id)))

    def _subscriptions_renew(self, request: Request, subscription_id: str) -> Response:
        subscription = self._subscription(request, subscription_id)
        subscription.expiration = self._expiration(request.json().get("expirationDateTime"))
        return Response(200, self._render_subscription(subscription))

    def _subscriptions_delete(self, request: Request, subscription_id: str) -> Response:
        del self._subscriptions[self._subscription(request, subscription_id).id]
        return Response(204)
