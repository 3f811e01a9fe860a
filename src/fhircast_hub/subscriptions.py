"""Subscription requests and subscriptions: parsing, event sets and leases.

Pure rules, no I/O. A websocket subscription is keyed by its endpoint id, a
random 256-bit token that is never reused: after unsubscribe or expiry the
subscription is deleted, and an unknown endpoint is refused. An STU2 webhook
subscription is keyed by an id derived from its topic and callback (see
``stu2.webhook_endpoint_id``), since STU2 names it by that pair.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from .errors import InvalidRequest
from .events.catalog import EventName, resolve_event_name
from .printable import require_printable
from .stu2 import expand_wildcard


__all__ = [
    "IRA_REQUIRED_EVENTS",
    "Subscription",
    "SubscriptionRequest",
    "lease_expiry",
    "lease_for",
    "new_endpoint_id",
    "parse_stu2_subscription_request",
    "parse_subscription_request",
]

Mode = Literal["subscribe", "unsubscribe"]

# IHE IRA (RAD-146): every subscriber takes part in report content sharing.
IRA_REQUIRED_EVENTS = (
    "DiagnosticReport-open",
    "DiagnosticReport-close",
    "DiagnosticReport-update",
    "DiagnosticReport-select",
    "SyncError",
)

# STU2: "hub.secret ... less than 200 bytes".
MAX_SECRET_BYTES = 200


@dataclass(frozen=True)
class SubscriptionRequest:
    """A validated subscribe or unsubscribe request."""

    mode: Mode
    channel_type: str
    topic: str
    events: tuple[EventName, ...]
    lease_seconds: int | None
    endpoint: str | None
    subscriber_name: str | None
    callback: str | None = None
    secret: str | None = None
    fhircast_version: str = "STU3"


@dataclass(frozen=True)
class Subscription:
    """An active subscription: what the hub stores and delivers by."""

    endpoint: str
    topic: str
    events: tuple[str, ...]
    expires_at: float
    subscriber_name: str | None = None
    channel_type: str = "websocket"
    # STU2 subscriptions spell events the STU2 way and receive STU2 shapes.
    fhircast_version: str = "STU3"
    # Webhooks only (STU2); the secret is never logged.
    callback: str | None = None
    secret: str | None = None

    def wants(self, event_key: str) -> bool:
        """Whether the subscriber was granted the event (a case-folded name)."""
        return event_key in self.event_keys

    @property
    def event_keys(self) -> frozenset[str]:
        return frozenset(name.lower() for name in self.events)

    def lease_seconds(self, now: float) -> int:
        """Seconds left on the lease, rounded, never negative."""
        return max(0, round(self.expires_at - now))

    def renewed(
        self, events: Sequence[str], expires_at: float, subscriber_name: str | None
    ) -> Subscription:
        return replace(
            self,
            events=tuple(events),
            expires_at=expires_at,
            subscriber_name=subscriber_name or self.subscriber_name,
        )

    @property
    def display_name(self) -> str:
        """How logs and SyncErrors name the subscriber."""
        if self.subscriber_name:
            return self.subscriber_name
        if self.channel_type == "webhook":
            return f"webhook {self.endpoint.removeprefix('webhook-')[:8]}"
        return f"subscriber {self.endpoint[:8]}"


def new_endpoint_id() -> str:
    """A fresh websocket endpoint id: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def lease_for(requested: int | None, default: int, maximum: int) -> int:
    """The lease granted for a requested one: the default when none, capped."""
    return min(requested if requested is not None else default, maximum)


def lease_expiry(
    requested: int | None,
    default: int,
    maximum: int,
    *,
    now: float,
    cap: float | None = None,
) -> float:
    """When a granted lease ends: never after ``cap`` (the token's expiry)."""
    expires_at = now + lease_for(requested, default, maximum)
    return expires_at if cap is None else min(expires_at, cap)


def parse_subscription_request(
    parameters: Iterable[tuple[str, Any]], *, ira: bool = False
) -> SubscriptionRequest:
    """Validate the parameters of a subscribe or unsubscribe request.

    ``parameters`` are (name, value) pairs as they arrived, so that a
    parameter given twice is refused, as FHIRcast STU3 asks. With ``ira``,
    the IHE IRA rules apply: a subscriber name, and the report events.
    """
    values = _once_each(parameters)
    mode = _mode(values)

    channel_type = _string(values, "hub.channel.type")
    if channel_type != "websocket":
        raise InvalidRequest(
            f"expected hub.channel.type 'websocket', got {channel_type!r}"
        )

    topic = _string(values, "hub.topic")
    endpoint = _endpoint_id(values.get("hub.channel.endpoint"))
    subscriber_name = _optional_string(values, "subscriber.name")

    if mode == "unsubscribe":
        if endpoint is None:
            raise InvalidRequest(
                "expected hub.channel.endpoint naming the subscription to end"
            )
        return SubscriptionRequest(
            "unsubscribe", channel_type, topic, (), None, endpoint, subscriber_name
        )

    # IRA (RAD-146) asks a subscribe, not an unsubscribe (RAD-152), for a name.
    if ira and subscriber_name is None:
        raise InvalidRequest("expected a non-empty subscriber.name")
    events = _event_set(values.get("hub.events"))
    if ira:
        granted = {name.key for name in events}
        missing = [name for name in IRA_REQUIRED_EVENTS if name.lower() not in granted]
        if missing:
            raise InvalidRequest(
                f"expected hub.events to include {list(IRA_REQUIRED_EVENTS)} "
                f"(IHE IRA); missing {missing}"
            )
    lease = _lease(values.get("hub.lease_seconds"))
    return SubscriptionRequest(
        "subscribe", channel_type, topic, events, lease, endpoint, subscriber_name
    )


def parse_stu2_subscription_request(
    parameters: Iterable[tuple[str, Any]],
) -> SubscriptionRequest:
    """Validate an FHIRcast STU2 subscribe or unsubscribe request.

    STU2 adds webhooks (``hub.callback``, ``hub.secret`` under 200 bytes) and
    wildcard events, which are expanded here (DESIGN.md item 2). On
    unsubscribe, ``hub.events`` and ``hub.lease_seconds`` are ignored: a
    partial unsubscribe does not exist. Whether the callback is an address
    the hub may call is checked by the webhook channel, not here.
    """
    values = _once_each(parameters)
    mode = _mode(values)

    channel_type = _string(values, "hub.channel.type")
    if channel_type not in ("websocket", "webhook"):
        raise InvalidRequest(
            f"expected hub.channel.type 'websocket' or 'webhook', got {channel_type!r}"
        )

    topic = _string(values, "hub.topic")
    subscriber_name = _optional_string(values, "subscriber.name")
    endpoint: str | None = None
    callback: str | None = None
    secret: str | None = None
    if channel_type == "webhook":
        callback = _string(values, "hub.callback")
        secret = _secret(values.get("hub.secret"))
    else:
        endpoint = _endpoint_id(values.get("hub.channel.endpoint"))

    if mode == "unsubscribe":
        if channel_type == "websocket" and endpoint is None:
            raise InvalidRequest(
                "expected hub.channel.endpoint naming the subscription to end"
            )
        return SubscriptionRequest(
            "unsubscribe",
            channel_type,
            topic,
            (),
            None,
            endpoint,
            subscriber_name,
            callback=callback,
            fhircast_version="STU2",
        )

    events = _event_set(values.get("hub.events"), stu2=True)
    lease = _lease(values.get("hub.lease_seconds"))
    return SubscriptionRequest(
        "subscribe",
        channel_type,
        topic,
        events,
        lease,
        endpoint,
        subscriber_name,
        callback=callback,
        secret=secret,
        fhircast_version="STU2",
    )


def _once_each(parameters: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in parameters:
        if name in values:
            raise InvalidRequest(f"expected {name!r} at most once, got it twice")
        values[name] = value
    return values


def _mode(values: Mapping[str, Any]) -> Mode:
    mode = _string(values, "hub.mode")
    if mode == "subscribe":
        return "subscribe"
    if mode == "unsubscribe":
        return "unsubscribe"
    raise InvalidRequest(
        f"expected hub.mode 'subscribe' or 'unsubscribe', got {mode!r}"
    )


def _secret(value: Any) -> str | None:
    """hub.secret as given (never stripped: it is a key), under 200 bytes."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest("expected hub.secret to be a string")
    size = len(value.encode())
    if size >= MAX_SECRET_BYTES:
        # The value itself is never echoed: it is a key.
        raise InvalidRequest(
            f"expected hub.secret under {MAX_SECRET_BYTES} bytes, got {size} bytes"
        )
    return value


def _string(values: Mapping[str, Any], name: str) -> str:
    value = values.get(name)
    if not isinstance(value, str) or not value.strip():
        shown = "nothing" if value is None else repr(value)
        raise InvalidRequest(f"expected a non-empty {name}, got {shown}")
    return require_printable(value.strip(), name)


def _optional_string(values: Mapping[str, Any], name: str) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"expected {name} to be a string, got {value!r}")
    return require_printable(value.strip(), name) or None


def _endpoint_id(value: Any) -> str | None:
    """The endpoint id from a full websocket URL or from the bare id."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise InvalidRequest(
            f"expected hub.channel.endpoint to be a URL string, got {value!r}"
        )
    return value.strip().split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def _event_set(value: Any, *, stu2: bool = False) -> tuple[EventName, ...]:
    """hub.events as a set: split on commas, trimmed, repeats dropped.

    With ``stu2``, wildcards are expanded to the catalog events they match.
    """
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    elif isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
    else:
        shown = "nothing" if value is None else repr(value)
        raise InvalidRequest(
            f"expected hub.events as a comma-separated list of events, got {shown}"
        )

    items = [item for item in items if item]
    if not items:
        raise InvalidRequest("expected at least one event in hub.events, got none")

    events: dict[str, EventName] = {}
    for item in items:
        names = (
            expand_wildcard(item)
            if stu2 and "*" in item
            else (resolve_event_name(item),)
        )
        for name in names:
            events.setdefault(name.key, name)
    return tuple(events.values())


def _lease(value: Any) -> int | None:
    if value is None or value == "":
        return None
    lease = 0
    # A float is a whole number only if it has no fraction (JSON 3600.0, 1e30):
    # 1.5 is refused rather than cut down to 1, and infinity is never whole.
    if isinstance(value, float) and value.is_integer():
        lease = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        lease = value
    elif isinstance(value, str):
        try:
            lease = int(value)
        except ValueError:
            lease = 0
    if lease <= 0:
        raise InvalidRequest(
            f"expected hub.lease_seconds to be a positive whole number, got {value!r}"
        )
    return lease
