"""``POST {hub.url}``: subscribe, unsubscribe, or send an event.

``post_hub`` serves STU3; ``post_hub_stu2`` serves STU2 clients, which may
also subscribe with webhooks and send STU2-shaped events.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..auth.backend import authenticate
from ..auth.principal import Principal
from ..auth.scopes import authorize_publish, authorize_subscribe, authorize_topic
from ..events.validation import parse_notification
from ..hub import Hub
from ..subscriptions import (
    SubscriptionRequest,
    parse_stu2_subscription_request,
    parse_subscription_request,
)
from .requests import (
    FORM,
    JSON_TYPES,
    media_type,
    read_body,
    read_form,
    read_json,
    unsupported,
)


__all__ = ["post_hub", "post_hub_stu2", "websocket_url"]

# Some clients (Medplum's) name the endpoint to unsubscribe plain "endpoint".
_ALIASES = {"endpoint": "hub.channel.endpoint"}


async def post_hub(request: Request) -> Response:
    return await _post(request, stu2=False)


async def post_hub_stu2(request: Request) -> Response:
    return await _post(request, stu2=True)


async def _post(request: Request, *, stu2: bool) -> Response:
    hub: Hub = request.app.state.hub
    principal = await authenticate(request)
    topic = request.path_params.get("topic")
    body = await read_body(request, hub.settings.max_body_bytes)

    kind = media_type(request)
    if kind == FORM:
        return await _subscription(request, hub, principal, read_form(body), stu2=stu2)
    if kind not in JSON_TYPES:
        raise unsupported(request)

    document = read_json(body)
    if isinstance(document, dict) and "hub.mode" in document:
        return await _subscription(
            request, hub, principal, list(document.items()), stu2=stu2
        )

    # IHE IRA profiles STU3; STU2 clients keep the STU2 rules.
    ira = hub.settings.ira_mode and not stu2
    notification = parse_notification(document, topic=topic, ira=ira, stu2=stu2)
    if principal is not None:
        authorize_publish(principal, notification.topic, notification.name)
    status = await hub.publish(notification)
    return Response(status_code=status)


async def _subscription(
    request: Request,
    hub: Hub,
    principal: Principal | None,
    parameters: list[tuple[str, Any]],
    *,
    stu2: bool,
) -> Response:
    parameters = [(_ALIASES.get(name, name), value) for name, value in parameters]
    if stu2:
        subscription_request = parse_stu2_subscription_request(parameters)
        if subscription_request.channel_type == "webhook":
            return await _webhook_subscription(hub, principal, subscription_request)
    else:
        subscription_request = parse_subscription_request(
            parameters, ira=hub.settings.ira_mode
        )
    if subscription_request.mode == "unsubscribe":
        if principal is not None:
            authorize_topic(principal, subscription_request.topic)
        subscription = await hub.unsubscribe(subscription_request)
    elif principal is None:
        subscription = await hub.subscribe(subscription_request)
    else:
        granted = authorize_subscribe(
            principal, subscription_request.topic, subscription_request.events
        )
        subscription = await hub.subscribe(
            subscription_request, events=granted, lease_cap=principal.expires_at
        )
    endpoint = websocket_url(request, subscription.endpoint)
    return JSONResponse({"hub.channel.endpoint": endpoint}, status_code=202)


async def _webhook_subscription(
    hub: Hub, principal: Principal | None, request: SubscriptionRequest
) -> Response:
    """202 with no body (STU2); intent is verified after the answer."""
    if request.mode == "unsubscribe":
        if principal is not None:
            authorize_topic(principal, request.topic)
        await hub.webhooks.unsubscribe(request)
    elif principal is None:
        await hub.webhooks.subscribe(request)
    else:
        granted = authorize_subscribe(principal, request.topic, request.events)
        await hub.webhooks.subscribe(
            request, events=granted, lease_cap=principal.expires_at
        )
    return Response(status_code=202)


def websocket_url(request: Request, endpoint: str) -> str:
    """The websocket URL of an endpoint: from the public URL, else the request.

    A plain-HTTP hub hands out ``ws://``, an HTTPS one ``wss://``.
    """
    hub: Hub = request.app.state.hub
    base = hub.settings.public_url or str(request.base_url)
    base = base.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base.removeprefix("https://")
    elif base.startswith("http://"):
        base = "ws://" + base.removeprefix("http://")
    return f"{base}/ws/{endpoint}"
