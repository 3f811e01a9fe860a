"""FHIRcast scopes and the permission checks of subscribe, publish and reads.

Pure rules, no I/O. A scope is ``fhircast/<event>.<read|write|*>``: ``read``
grants receiving the event, ``write`` grants sending it, ``*`` both; the event
``*`` stands for every event. Scope names compare without case, like event
names. Other scopes in a token (SMART's ``patient/*.rs``, ``openid``) are
ignored here. A token that names a ``hub.topic`` is good for that topic only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Forbidden
from ..events.catalog import EventName


if TYPE_CHECKING:
    from .principal import Principal


__all__ = [
    "FhircastScope",
    "authorize_context_read",
    "authorize_publish",
    "authorize_subscribe",
    "authorize_topic",
    "may_read",
    "may_write",
    "parse_scopes",
]

_PREFIX = "fhircast/"
_ANY = "*"


@dataclass(frozen=True)
class FhircastScope:
    """One FHIRcast scope: a case-folded event name (or ``*``) and its rights."""

    event: str
    read: bool
    write: bool

    def covers(self, event_key: str) -> bool:
        return self.event in (_ANY, event_key)


def parse_scopes(value: Any) -> tuple[FhircastScope, ...]:
    """The FHIRcast scopes of a ``scope`` string or a ``scp`` list.

    Anything that is not a well-formed FHIRcast scope is skipped, so that a
    token with only other scopes simply grants nothing here.
    """
    if isinstance(value, str):
        items: Iterable[Any] = value.split()
    elif isinstance(value, list | tuple):
        items = value
    else:
        return ()

    scopes: list[FhircastScope] = []
    for item in items:
        if not isinstance(item, str):
            continue
        text = item.strip().lower()
        if not text.startswith(_PREFIX):
            continue
        # rpartition: custom event names themselves contain dots.
        event, dot, right = text.removeprefix(_PREFIX).rpartition(".")
        if not dot or not event or right not in ("read", "write", _ANY):
            continue
        scopes.append(
            FhircastScope(event, right in ("read", _ANY), right in ("write", _ANY))
        )
    return tuple(scopes)


def may_read(scopes: Sequence[FhircastScope], event_key: str) -> bool:
    return any(scope.read and scope.covers(event_key) for scope in scopes)


def may_write(scopes: Sequence[FhircastScope], event_key: str) -> bool:
    return any(scope.write and scope.covers(event_key) for scope in scopes)


def authorize_topic(principal: Principal, topic: str) -> None:
    """Refuse a topic other than the one the token was issued for."""
    if principal.topic is not None and principal.topic != topic:
        raise Forbidden(
            f"expected a token issued for the topic {topic[:8]!r}..., got one "
            "issued for another hub.topic; ask the authorization server for a "
            "token for this topic"
        )


def authorize_subscribe(
    principal: Principal, topic: str, events: Sequence[EventName]
) -> tuple[EventName, ...]:
    """The requested events the token may read; refused when there are none."""
    authorize_topic(principal, topic)
    granted = tuple(name for name in events if may_read(principal.scopes, name.key))
    if not granted:
        wanted = [f"fhircast/{name.canonical}.read" for name in events]
        raise Forbidden(
            f"expected a token that may read at least one of the requested "
            f"events ({', '.join(wanted)}), got one that may read none of them",
            scope=" ".join(wanted),
        )
    return granted


def authorize_publish(principal: Principal, topic: str, event: EventName) -> None:
    """Refuse sending an event without write access to it, or to another topic."""
    authorize_topic(principal, topic)
    if not may_write(principal.scopes, event.key):
        scope = f"fhircast/{event.canonical}.write"
        raise Forbidden(
            f"expected a token with the scope {scope} (or fhircast/*.write) to "
            f"send {event.canonical}, got one without it",
            scope=scope,
        )


def authorize_context_read(principal: Principal, topic: str) -> None:
    """Reading a topic's current context needs read access to some event of it."""
    authorize_topic(principal, topic)
    if not any(scope.read for scope in principal.scopes):
        raise Forbidden(
            "expected a token with a FHIRcast read scope (such as "
            "fhircast/Patient-open.read) to read the current context, got none",
            scope="fhircast/*.read",
        )
