"""The table of events the hub knows, and how an event name is resolved.

Names match case-insensitively and exactly: ``patient-OPEN`` is
``Patient-open``, ``ient-op`` is nothing. Catalog events go out in their
canonical spelling. Custom events use reverse-domain names
(``com.example.ping``) and pass through as sent.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ..errors import InvalidRequest


__all__ = [
    "CATALOG",
    "Action",
    "EventDefinition",
    "EventName",
    "resolve_event_name",
]


class Action(enum.Enum):
    """What an event does to the topic's current context."""

    OPEN = "open"
    CLOSE = "close"
    UPDATE = "update"
    SELECT = "select"
    NONE = "none"


@dataclass(frozen=True)
class EventDefinition:
    """One catalog event: its canonical name and the context it requires."""

    name: str
    required_keys: tuple[str, ...]
    action: Action = Action.NONE
    anchor_type: str | None = None
    anchor_key: str | None = None
    stu2_name: str | None = None
    # STU2 defined some events with less context (userLogout: none at all).
    stu2_required_keys: tuple[str, ...] | None = None


def _anchor_events(
    resource_type: str, anchor_key: str, also_required: tuple[str, ...]
) -> list[EventDefinition]:
    return [
        EventDefinition(
            name=f"{resource_type}-{action.value}",
            required_keys=(anchor_key, *also_required),
            action=action,
            anchor_type=resource_type,
            anchor_key=anchor_key,
        )
        for action in (Action.OPEN, Action.CLOSE)
    ]


_DEFINITIONS: list[EventDefinition] = [
    *_anchor_events("Patient", "patient", ()),
    *_anchor_events("Encounter", "encounter", ("patient",)),
    *_anchor_events("ImagingStudy", "study", ()),
    *_anchor_events("DiagnosticReport", "report", ("patient",)),
    EventDefinition(
        name="DiagnosticReport-update",
        required_keys=("report", "updates"),
        action=Action.UPDATE,
        anchor_type="DiagnosticReport",
        anchor_key="report",
    ),
    EventDefinition(
        name="DiagnosticReport-select",
        required_keys=("report", "select"),
        action=Action.SELECT,
        anchor_type="DiagnosticReport",
        anchor_key="report",
    ),
    EventDefinition(
        name="SyncError", required_keys=("operationoutcome",), stu2_name="syncerror"
    ),
    EventDefinition(
        name="UserLogout",
        required_keys=("parameters",),
        stu2_name="userLogout",
        stu2_required_keys=(),
    ),
    EventDefinition(
        name="UserHibernate",
        required_keys=("parameters",),
        stu2_name="userHibernate",
        stu2_required_keys=(),
    ),
    EventDefinition(name="Home-open", required_keys=()),
]

CATALOG: dict[str, EventDefinition] = {
    definition.name.lower(): definition for definition in _DEFINITIONS
}

# Reverse-domain names: two or more dot-separated labels, e.g. com.example.ping.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?"
_CUSTOM_EVENT = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")


@dataclass(frozen=True)
class EventName:
    """A resolved event name: the spelling to send and the catalog entry."""

    canonical: str
    definition: EventDefinition | None

    @property
    def key(self) -> str:
        """The case-folded form that subscriptions and scopes match on."""
        return self.canonical.lower()


def resolve_event_name(name: object) -> EventName:
    """Resolve a name from a request, or raise InvalidRequest saying why not."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest(f"expected an event name, got {name!r}")

    name = name.strip()
    definition = CATALOG.get(name.lower())
    if definition is not None:
        return EventName(definition.name, definition)

    if "*" in name:
        raise InvalidRequest(
            f"wildcard event names such as {name!r} are not supported by FHIRcast "
            "STU3; list the events one by one"
        )
    if _CUSTOM_EVENT.fullmatch(name):
        return EventName(name, None)

    known = ", ".join(definition.name for definition in _DEFINITIONS)
    raise InvalidRequest(
        f"unknown event {name!r}: expected one of {known}, "
        "or a reverse-domain custom event such as com.example.ping"
    )
