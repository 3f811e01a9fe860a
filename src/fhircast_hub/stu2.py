"""The FHIRcast STU2 dialect: event spellings, wildcards and message shapes.

Pure rules, no I/O. STU2 and STU3 subscribers share topics (DESIGN.md): the
hub keeps every event in its STU3 shape and renders it for STU2 subscribers
on the way out, once per event.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from .errors import InvalidRequest
from .events.catalog import CATALOG, EventName


__all__ = [
    "current_context",
    "event_name",
    "events_supported",
    "expand_wildcard",
    "render_notification",
    "render_text",
    "webhook_endpoint_id",
]

_SYNCERROR_EVENTNAME = "https://fhircast.hl7.org/events/syncerror/eventname"
# Fields STU3 content sharing adds that STU2 never defined.
_STU3_ONLY_FIELDS = ("context.versionId", "context.priorVersionId")


def event_name(name: str) -> str:
    """The STU2 spelling of an event: lower case (``patient-open``,
    ``syncerror``) except where STU2 spelled it otherwise (``userLogout``);
    custom events as sent."""
    definition = CATALOG.get(name.lower())
    if definition is None:
        return name
    return definition.stu2_name or definition.name.lower()


def events_supported() -> list[str]:
    return [event_name(definition.name) for definition in CATALOG.values()]


def expand_wildcard(pattern: str) -> tuple[EventName, ...]:
    """The catalog events an STU2 wildcard names: ``*-open``, ``patient-*``.

    STU2's grammar is ``(resource | '*') '-' ('open' | 'close' | '*')``; a
    ``*`` stands for a whole part only, and a wildcard that matches no event
    is refused rather than granted as nothing.
    """
    resource, dash, action = pattern.lower().partition("-")
    if not dash or not all(
        part == "*" or "*" not in part for part in (resource, action)
    ):
        raise InvalidRequest(
            f"expected a wildcard such as '*-open' or 'patient-*', got {pattern!r}: "
            "'*' may only stand for the whole resource or the whole action"
        )

    matches: list[EventName] = []
    for key, definition in CATALOG.items():
        event_resource, event_dash, event_action = key.partition("-")
        if not event_dash:
            continue
        if resource in ("*", event_resource) and action in ("*", event_action):
            matches.append(EventName(definition.name, definition))
    if not matches:
        raise InvalidRequest(f"the wildcard {pattern!r} matches no event the hub knows")
    return tuple(matches)


def webhook_endpoint_id(topic: str, callback: str) -> str:
    """The store key of a webhook subscription.

    STU2 identifies a webhook subscription by (topic, callback), so a
    re-subscribe replaces it and an unsubscribe finds it; hashing keeps the
    callback, which may carry a secret path, out of keys and logs.
    """
    digest = hashlib.sha256(f"{topic}\n{callback}".encode()).hexdigest()
    return f"webhook-{digest}"


def render_notification(notification: dict[str, Any]) -> dict[str, Any]:
    """A notification in its STU2 shape; the STU3 one is left untouched."""
    event = dict(notification["event"])
    name = event.get("hub.event")
    if isinstance(name, str):
        event["hub.event"] = event_name(name)
    for field in _STU3_ONLY_FIELDS:
        event.pop(field, None)
    if event.get("hub.event") == "syncerror":
        event["context"] = _stu2_syncerror_context(event.get("context"))
    return {**notification, "event": event}


def render_text(payload: str) -> str:
    """:func:`render_notification` of a serialized notification."""
    rendered = render_notification(json.loads(payload))
    return json.dumps(rendered, separators=(",", ":"))


def current_context(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The STU2 answer to GET current context: the context array alone.

    STU2 has no content sharing, so the hub's ``content`` entry is left out;
    nothing open is ``[]``.
    """
    context: list[dict[str, Any]] = answer.get("context", [])
    return [entry for entry in context if entry.get("key") != "content"]


def _stu2_syncerror_context(context: Any) -> Any:
    """Name the failed event the STU2 way inside the OperationOutcome."""
    context = copy.deepcopy(context)
    if not isinstance(context, list):
        return context
    for entry in context:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        issues = resource.get("issue") if isinstance(resource, dict) else None
        for issue in issues if isinstance(issues, list) else []:
            details = issue.get("details") if isinstance(issue, dict) else None
            codings = details.get("coding") if isinstance(details, dict) else None
            for coding in codings if isinstance(codings, list) else []:
                if not isinstance(coding, dict):
                    continue
                code = coding.get("code")
                if (
                    isinstance(code, str)
                    and coding.get("system") == _SYNCERROR_EVENTNAME
                ):
                    coding["code"] = event_name(code)
    return context
