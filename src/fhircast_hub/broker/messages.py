"""The messages hub processes exchange through the broker.

A message is one JSON header line followed by a payload. An event's payload
is the notification exactly as subscribers receive it, serialized once by
the publishing process; receiving processes pass it on without re-encoding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


__all__ = [
    "ControlMessage",
    "EventMessage",
    "decode",
    "encode_batch",
    "encode_control",
    "encode_event",
]


@dataclass(frozen=True)
class EventMessage:
    """An event for the subscribers of a topic that were granted it.

    ``exclude`` names an endpoint not to send it to; subscribers granted the
    ``unless`` event do not get it either.
    """

    event_id: str
    event_name: str
    payload: str
    exclude: str | None = None
    unless: str | None = None


@dataclass(frozen=True)
class ControlMessage:
    """A change to one subscription, for the process that holds its socket."""

    operation: str
    endpoint: str
    fields: dict[str, Any] = field(default_factory=dict)


def encode_event(
    event_id: str,
    event_name: str,
    body: dict[str, Any],
    *,
    exclude: str | None = None,
    unless: str | None = None,
) -> bytes:
    header: dict[str, Any] = {"kind": "event", "id": event_id, "event": event_name}
    if exclude is not None:
        header["exclude"] = exclude
    if unless is not None:
        header["unless"] = unless
    return _frame(header, json.dumps(body, separators=(",", ":")))


def encode_batch(messages: list[bytes]) -> bytes:
    """Several messages as one, so that they are published in one step."""
    header = {"kind": "batch", "sizes": [len(message) for message in messages]}
    return (json.dumps(header, separators=(",", ":")) + "\n").encode() + b"".join(
        messages
    )


def encode_control(operation: str, endpoint: str, **fields: Any) -> bytes:
    header = {"kind": "control", "op": operation, "endpoint": endpoint}
    return _frame(header, json.dumps(fields, separators=(",", ":")))


def _frame(header: dict[str, Any], payload: str) -> bytes:
    return (json.dumps(header, separators=(",", ":")) + "\n" + payload).encode()


def decode(message: bytes) -> list[EventMessage | ControlMessage]:
    """Decode a broker message; raise ValueError on one that is malformed."""
    header_line, _, rest = message.partition(b"\n")
    header = json.loads(header_line)
    kind = header.get("kind")
    if kind == "event":
        return [
            EventMessage(
                header["id"],
                header["event"],
                rest.decode(),
                header.get("exclude"),
                header.get("unless"),
            )
        ]
    if kind == "control":
        return [ControlMessage(header["op"], header["endpoint"], json.loads(rest))]
    if kind == "batch":
        decoded: list[EventMessage | ControlMessage] = []
        offset = 0
        for size in header["sizes"]:
            decoded += decode(rest[offset : offset + size])
            offset += size
        return decoded
    raise ValueError(f"unknown broker message kind {kind!r}")
