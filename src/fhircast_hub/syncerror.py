"""SyncError events the hub originates (DESIGN.md item 8)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any


__all__ = ["sync_error_event", "utc_timestamp"]

_SYSTEM = "https://fhircast.hl7.org/events/syncerror"


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sync_error_event(
    *,
    topic: str,
    event_id: str,
    event_name: str,
    subscriber_name: str,
    diagnostics: str,
) -> dict[str, Any]:
    """A SyncError notification about one subscriber and one event."""
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "warning",
                "code": "processing",
                "diagnostics": diagnostics,
                "details": {
                    "coding": [
                        {"system": f"{_SYSTEM}/eventid", "code": event_id},
                        {"system": f"{_SYSTEM}/eventname", "code": event_name},
                        {
                            "system": f"{_SYSTEM}/subscribername",
                            "code": subscriber_name,
                        },
                    ]
                },
            }
        ],
    }
    return {
        "timestamp": utc_timestamp(),
        "id": str(uuid.uuid4()),
        "event": {
            "hub.topic": topic,
            "hub.event": "SyncError",
            "context": [{"key": "operationoutcome", "resource": outcome}],
        },
    }
