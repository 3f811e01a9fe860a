"""Validation of event notifications sent to the hub.

The hub checks what it relies on, the envelope, the context keys each catalog
event requires and the ids of anchors, and passes everything else through
unchanged (timestamps and resources included), as DESIGN.md item 10 says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequest
from ..printable import require_printable
from .catalog import Action, EventName, resolve_event_name


__all__ = [
    "Notification",
    "context_entries",
    "entry_resource_id",
    "parse_notification",
    "requested_version_id",
]


@dataclass(frozen=True)
class Notification:
    """A validated event notification, ready to apply and distribute.

    ``body`` is the request as received, with ``hub.event`` in its canonical
    spelling; the hub adds version ids to it before distribution.
    """

    id: str
    timestamp: str
    topic: str
    name: EventName
    body: dict[str, Any]

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = self.body["event"]
        return event

    @property
    def context(self) -> list[dict[str, Any]]:
        context: list[dict[str, Any]] = self.event["context"]
        return context

    @property
    def anchor_id(self) -> str | None:
        """The id of the resource this event opens, closes, updates or selects in."""
        definition = self.name.definition
        if definition is None or definition.anchor_key is None:
            return None
        for entry in context_entries(self.context, definition.anchor_key):
            return entry_resource_id(entry)
        return None


def context_entries(context: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """The context entries under ``key`` (keys compare case-sensitively)."""
    return [entry for entry in context if entry.get("key") == key]


def entry_resource_id(entry: dict[str, Any]) -> str | None:
    """The id of the resource a context entry carries or refers to."""
    resource = entry.get("resource")
    if isinstance(resource, dict):
        resource_id = resource.get("id")
        return resource_id if isinstance(resource_id, str) and resource_id else None

    reference = entry.get("reference")
    if isinstance(reference, dict):
        target = reference.get("reference")
        if isinstance(target, str):
            # Type/id, possibly absolute or versioned (Type/id/_history/1).
            path = target.split("/_history/", 1)[0].rstrip("/")
            resource_type, _, resource_id = path.rpartition("/")
            if resource_type and resource_id:
                return resource_id
    return None


def requested_version_id(event: dict[str, Any]) -> str | None:
    """The versionId an update was made against (both spellings are read)."""
    for field in ("context.versionId", "versionId"):
        value = event.get(field)
        if isinstance(value, str) and value:
            return value
    return None


def _require_string(container: dict[str, Any], field: str, where: str) -> str:
    value = container.get(field)
    if not isinstance(value, str) or not value.strip():
        shown = "nothing" if field not in container else repr(value)
        raise InvalidRequest(
            f"expected {where}{field!r} to be a non-empty string, got {shown}"
        )
    return value


# IHE IRA (RAD-148) asks more of a report's open than FHIRcast does.
_IRA_REQUIRED_KEYS = {"DiagnosticReport-open": ("report", "patient", "study")}


def parse_notification(
    body: Any, *, topic: str | None = None, ira: bool = False, stu2: bool = False
) -> Notification:
    """Validate a decoded JSON request body as an event notification.

    ``topic`` is the topic named in the URL path, if any: it must equal the
    topic in the body. With ``ira``, the IHE IRA context rules apply; with
    ``stu2``, the STU2 ones where they are looser than STU3's.
    """
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"expected a JSON object with timestamp, id and event, "
            f"got {type(body).__name__}"
        )

    timestamp = _require_string(body, "timestamp", "")
    event_id = require_printable(_require_string(body, "id", ""), "id")
    event = body.get("event")
    if not isinstance(event, dict):
        raise InvalidRequest(f"expected 'event' to be an object, got {event!r}")

    body_topic = require_printable(
        _require_string(event, "hub.topic", "event."), "event.hub.topic"
    )
    if topic is not None and body_topic != topic:
        raise InvalidRequest(
            f"the topic in the URL, {topic!r}, differs from event.hub.topic "
            f"{body_topic!r}"
        )
    name = resolve_event_name(event.get("hub.event"))

    context = event.get("context")
    if not isinstance(context, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("key"), str)
        for entry in context
    ):
        raise InvalidRequest(
            "expected event.context to be an array of objects with a 'key', "
            f"got {_describe(context)}"
        )

    if name.definition is not None:
        required = name.definition.required_keys
        if ira:
            required = _IRA_REQUIRED_KEYS.get(name.canonical, required)
        if stu2 and name.definition.stu2_required_keys is not None:
            required = name.definition.stu2_required_keys
        _check_required_context(name, required, event, context)

    # The body is the caller's freshly decoded JSON: only the event is re-cased.
    distributed = {**body, "event": {**event, "hub.event": name.canonical}}
    return Notification(event_id, timestamp, body_topic, name, distributed)


def _check_required_context(
    name: EventName,
    required: tuple[str, ...],
    event: dict[str, Any],
    context: list[dict[str, Any]],
) -> None:
    definition = name.definition
    assert definition is not None, "only catalog events have required context"

    present = {entry["key"] for entry in context}
    missing = [key for key in required if key not in present]
    if missing:
        raise InvalidRequest(
            f"{name.canonical} requires the context keys {list(required)}; "
            f"missing {missing}"
        )

    if definition.anchor_key is not None:
        anchor = context_entries(context, definition.anchor_key)[0]
        if entry_resource_id(anchor) is None:
            raise InvalidRequest(
                f"{name.canonical} requires an id in its {definition.anchor_key!r} "
                "context entry (resource.id, or reference.reference as Type/id)"
            )

    if definition.action is Action.UPDATE:
        if requested_version_id(event) is None:
            raise InvalidRequest(
                f"{name.canonical} requires event['context.versionId'], the "
                "version of the context the update was made against"
            )
        updates = context_entries(context, "updates")[0].get("resource")
        if not isinstance(updates, dict) or updates.get("resourceType") != "Bundle":
            raise InvalidRequest(
                f"{name.canonical} requires a Bundle resource under the 'updates' "
                f"key, got {_describe(updates)}"
            )

    if definition.name == "SyncError":
        outcome = context_entries(context, "operationoutcome")[0].get("resource")
        if not isinstance(outcome, dict) or (
            outcome.get("resourceType") != "OperationOutcome"
        ):
            raise InvalidRequest(
                "SyncError requires an OperationOutcome resource under the "
                f"'operationoutcome' key, got {_describe(outcome)}"
            )


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("resourceType")
        return f"a {kind} resource" if kind else "an object"
    return "nothing" if value is None else type(value).__name__
