"""The current context of a topic: what is open, what is current, and content.

Pure rules, no I/O. The store loads a :class:`TopicContext`, :func:`apply_event`
returns the next one together with the event to distribute, and the store
saves it with a compare-and-set, so that concurrent changes never interleave.

The rules, after FHIRcast STU3 and IHE IRA (DESIGN.md items 4 to 6):

- every ``*-open`` gets a fresh ``context.versionId`` and becomes current;
  earlier contexts stay open, each with its own content;
- re-opening an open context makes it current again with its content intact;
- a ``*-close`` removes that context; closing the current one leaves the
  current context empty, with no fallback to an earlier one;
- a ``DiagnosticReport-update`` must carry the versionId of its report's
  context, applies its Bundle atomically and makes a new versionId;
- update, select or close of a context that is not open is a conflict (409).

States, open contexts and the resources in them are treated as values: the
rules never modify what they are given and build the next state from new
lists and new :class:`OpenContext` objects, sharing what did not change.
Copying a topic's whole state per event would cost more than the rest of an
event's handling (a report's content can hold dozens of resources).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .content import (
    apply_bundle,
    drop_unknown,
    known_references,
    resource_reference,
    select_references,
)
from .errors import Conflict, PayloadTooLarge, VersionMismatch
from .events.catalog import Action
from .events.validation import (
    Notification,
    context_entries,
    requested_version_id,
)


__all__ = [
    "Change",
    "DerivedOpen",
    "OpenContext",
    "TopicContext",
    "apply_event",
    "current_context",
    "replay_events",
]

# Context keys that name a resource whose own open event an open implies,
# and the keys that implied open carries.
_IMPLIED_OPENS = {
    "patient": ("Patient", ("patient",)),
    "encounter": ("Encounter", ("encounter", "patient")),
    "study": ("ImagingStudy", ("study", "patient")),
}


@dataclass
class OpenContext:
    """One open context (a patient, a study, a report...) and its content."""

    anchor_type: str
    anchor_id: str
    version_id: str
    event: dict[str, Any]
    content: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.anchor_type}/{self.anchor_id}"


@dataclass
class TopicContext:
    """Everything open on one topic, oldest open first, and which is current."""

    opens: list[OpenContext] = field(default_factory=list)
    current: str | None = None
    announced: list[str] = field(default_factory=list)

    def find(self, key: str) -> OpenContext | None:
        for open_context in self.opens:
            if open_context.key == key:
                return open_context
        return None


@dataclass(frozen=True)
class DerivedOpen:
    """An open the hub sends on its own, implied by another open event.

    It goes to the subscribers granted its event but not ``unless``, the
    event that implied it: they would otherwise not learn of the context.
    """

    event: dict[str, Any]
    unless: str


@dataclass(frozen=True)
class Change:
    """The outcome of one event: the next state and the events to distribute.

    ``status`` is what the sender is answered (202, or 206 for a select that
    named resources the hub does not know). ``distributed`` is ``None`` when
    there is nothing to send: a select none of whose selections the hub knows.
    ``derived`` opens go out first.
    """

    state: TopicContext
    distributed: dict[str, Any] | None
    status: int = 202
    derived: tuple[DerivedOpen, ...] = ()


def apply_event(
    state: TopicContext,
    notification: Notification,
    new_version_id: Callable[[], str],
    *,
    derive_opens: bool = True,
    max_content_bytes: int | None = None,
) -> Change | None:
    """Apply one event to a topic's context; ``None`` if it changes nothing.

    An update that would make a context's shared content larger than
    ``max_content_bytes`` (serialized) is refused with 413.

    With ``derive_opens``, an open that names resources of other anchor types
    (an Encounter-open names its patient) also yields the opens it implies,
    once per resource while it is not open itself (FHIRcast STU3 2-9).
    """
    definition = notification.name.definition
    if definition is None or definition.action is Action.NONE:
        return None

    assert definition.anchor_type is not None, "anchored events name their type"
    anchor_id = notification.anchor_id
    assert anchor_id is not None, "validation guarantees an anchor id"
    key = f"{definition.anchor_type}/{anchor_id}"
    # A new state sharing the unchanged open contexts (see the module doc).
    state = TopicContext(list(state.opens), state.current, list(state.announced))

    if definition.action is Action.OPEN:
        change = _open(state, notification, key, new_version_id())
        if not derive_opens:
            return change
        derived = _derive_opens(change.state, notification)
        return Change(change.state, change.distributed, derived=derived)

    existing = state.find(key)
    if existing is None and definition.action is Action.CLOSE:
        if key in state.announced:
            # Only a hub-made open told subscribers of it; its close ends that,
            # so that a later event naming it announces it again.
            state.announced.remove(key)
            return Change(state, notification.body)
    if existing is None:
        raise Conflict(
            f"{notification.name.canonical} names {key}, which is not open on "
            f"this topic; open it first"
        )

    if definition.action is Action.CLOSE:
        state.opens.remove(existing)
        if state.current == key:
            state.current = None
        if key in state.announced:
            state.announced.remove(key)
        return Change(state, notification.body)

    if definition.action is Action.UPDATE:
        return _update(
            state, notification, existing, new_version_id(), max_content_bytes
        )

    return _select(state, notification, existing)


def _open(
    state: TopicContext, notification: Notification, key: str, version_id: str
) -> Change:
    definition = notification.name.definition
    assert definition is not None and definition.anchor_type is not None

    distributed = _with_event_fields(
        notification.body, {"context.versionId": version_id}
    )

    previous = state.find(key)
    content = previous.content if previous is not None else {}
    if previous is not None:
        state.opens.remove(previous)
    state.opens.append(
        OpenContext(
            definition.anchor_type,
            key.split("/", 1)[1],
            version_id,
            distributed,
            content,
        )
    )
    state.current = key
    return Change(state, distributed)


def _derive_opens(
    state: TopicContext, notification: Notification
) -> tuple[DerivedOpen, ...]:
    definition = notification.name.definition
    assert definition is not None and definition.anchor_type is not None
    derived = []
    for reference, event in _implied_opens(notification.body, definition.anchor_type):
        if state.find(reference) is not None or reference in state.announced:
            continue
        state.announced.append(reference)
        derived.append(DerivedOpen(event, unless=notification.name.canonical))
    return tuple(derived)


def _implied_opens(
    body: dict[str, Any], anchor_type: str
) -> list[tuple[str, dict[str, Any]]]:
    """The opens an open event implies, by the Type/id of what each opens."""
    context = body["event"]["context"]
    implied_opens = []
    for entry in context:
        implied = _IMPLIED_OPENS.get(entry["key"])
        reference = resource_reference(entry.get("resource"))
        if implied is None or reference is None or implied[0] == anchor_type:
            continue
        implied_type, keys = implied
        event = {
            "timestamp": body["timestamp"],
            "id": str(uuid.uuid4()),
            "event": {
                "hub.topic": body["event"]["hub.topic"],
                "hub.event": f"{implied_type}-open",
                "context": [e for e in context if e["key"] in keys],
            },
        }
        implied_opens.append((reference, event))
    return implied_opens


def _update(
    state: TopicContext,
    notification: Notification,
    report: OpenContext,
    version_id: str,
    max_content_bytes: int | None = None,
) -> Change:
    requested = requested_version_id(notification.event)
    if requested != report.version_id:
        raise VersionMismatch(
            f"{notification.name.canonical} was made against versionId "
            f"{requested!r}, but {report.key} is at versionId {report.version_id!r}; "
            "read the current context and apply the change again"
        )

    bundle = context_entries(notification.context, "updates")[0]["resource"]
    content = apply_bundle(report.content, report.event["event"]["context"], bundle)
    if max_content_bytes is not None:
        # Each update is within the body limit, but added resources pile up:
        # in memory, in every Get Current Context, and on Redis in every
        # event's round trip of the topic's state.
        size = len(json.dumps(content, separators=(",", ":")))
        if size > max_content_bytes:
            raise PayloadTooLarge(
                f"expected the shared content of {report.key} to stay within "
                f"{max_content_bytes} bytes, got {size} bytes after this update; "
                "remove resources, or close the report and open another"
            )
    updated = replace(report, content=content, version_id=version_id)
    position = next(i for i, each in enumerate(state.opens) if each is report)
    state.opens[position] = updated

    distributed = _with_event_fields(
        notification.body,
        {"context.versionId": version_id, "context.priorVersionId": report.version_id},
        without="versionId",
    )
    return Change(state, distributed)


def _with_event_fields(
    body: dict[str, Any], fields: dict[str, str], without: str | None = None
) -> dict[str, Any]:
    """A copy of a notification with fields set in its event (context shared)."""
    event = {name: value for name, value in body["event"].items() if name != without}
    return {**body, "event": {**event, **fields}}


def _select(
    state: TopicContext, notification: Notification, report: OpenContext
) -> Change:
    if state.current != report.key:
        raise Conflict(
            f"{notification.name.canonical} must target the current context, "
            f"but {report.key} is open and not current"
        )

    known = known_references(report.content, report.event["event"]["context"])
    distributed = copy.deepcopy(notification.body)
    kept: list[dict[str, Any]] = []
    unknown = False
    for entry in distributed["event"]["context"]:
        if entry.get("key") != "select":
            kept.append(entry)
            continue
        selection = select_references(entry)
        if all(reference in known for reference in selection):
            kept.append(entry)
        else:
            unknown = True
            drop_unknown(entry, known)
            if select_references(entry):
                kept.append(entry)
    distributed["event"]["context"] = kept
    if not any(entry.get("key") == "select" for entry in kept):
        # A select needs at least one selection (1..*): with every one unknown,
        # there is no valid event left to send.
        return Change(state, None, status=206)
    return Change(state, distributed, status=206 if unknown else 202)


def current_context(state: TopicContext) -> dict[str, Any]:
    """The Get Current Context answer for a topic."""
    current = state.find(state.current) if state.current is not None else None
    if current is None:
        return {"context.type": "", "context": []}

    entries = [
        {"fullUrl": reference, "resource": resource}
        for reference, resource in current.content.items()
    ]
    content = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    return {
        "context.type": current.anchor_type,
        "context.versionId": current.version_id,
        "context": [
            *current.event["event"]["context"],
            {"key": "content", "resource": content},
        ],
    }


def replay_events(
    state: TopicContext, wants: Callable[[str], bool]
) -> list[dict[str, Any]]:
    """What a new subscriber is sent: the open contexts it would have followed.

    Per anchor type, the latest open context still open, in the order they
    happened, if ``wants`` its open event (a case-folded name). Each keeps its
    original id and timestamp; its ``context.versionId`` is the context's
    version now, so that a late subscriber can update it. An open the
    subscriber was not granted still tells it of the resources it names, as
    hub-made opens do (once each).
    """
    latest: dict[str, OpenContext] = {}
    for open_context in state.opens:
        latest[open_context.anchor_type] = open_context

    replay = []
    implied_sent: set[str] = set()
    for open_context in state.opens:
        if latest[open_context.anchor_type] is not open_context:
            continue
        event = copy.deepcopy(open_context.event)
        event["event"]["context.versionId"] = open_context.version_id
        if wants(event["event"]["hub.event"].lower()):
            replay.append(event)
            continue
        for reference, implied in _implied_opens(event, open_context.anchor_type):
            if state.find(reference) is not None or reference in implied_sent:
                continue
            if wants(implied["event"]["hub.event"].lower()):
                implied_sent.add(reference)
                replay.append(implied)
    return replay
