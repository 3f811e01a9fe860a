"""Small builders of FHIRcast messages and raw requests for the behaviour tests."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx2
import websockets
from websockets.asyncio.client import ClientConnection

from fhircast_hub.client import Connection, HubClient


__all__ = [
    "collect_events",
    "encounter",
    "new_topic",
    "notification",
    "patient",
    "patient_open",
    "post_event",
    "post_form",
    "recv_json",
    "report",
    "report_open",
    "study",
    "study_open",
    "subscribe_form",
    "sync_errors",
]


def new_topic() -> str:
    return str(uuid.uuid4())


def patient(patient_id: str = "p1", key: str = "patient") -> dict[str, Any]:
    return {
        "key": key,
        "resource": {
            "resourceType": "Patient",
            "id": patient_id,
            "identifier": [{"system": "urn:mrn", "value": f"mrn-{patient_id}"}],
        },
    }


def encounter(encounter_id: str = "e1") -> dict[str, Any]:
    return {
        "key": "encounter",
        "resource": {"resourceType": "Encounter", "id": encounter_id},
    }


def study(study_id: str = "s1") -> dict[str, Any]:
    return {
        "key": "study",
        "resource": {"resourceType": "ImagingStudy", "id": study_id},
    }


def report(report_id: str = "r1") -> dict[str, Any]:
    return {
        "key": "report",
        "resource": {"resourceType": "DiagnosticReport", "id": report_id},
    }


def notification(
    topic: str,
    event: str,
    context: list[dict[str, Any]],
    *,
    event_id: str | None = None,
    timestamp: str = "2024-05-01T10:00:00.000Z",
) -> dict[str, Any]:
    return {
        "timestamp": timestamp,
        "id": event_id or str(uuid.uuid4()),
        "event": {"hub.topic": topic, "hub.event": event, "context": context},
    }


def patient_open(topic: str, patient_id: str = "p1", **kwargs: Any) -> dict[str, Any]:
    return notification(topic, "Patient-open", [patient(patient_id)], **kwargs)


def study_open(topic: str, study_id: str = "s1", **kwargs: Any) -> dict[str, Any]:
    return notification(
        topic, "ImagingStudy-open", [study(study_id), patient()], **kwargs
    )


def report_open(topic: str, report_id: str = "r1", **kwargs: Any) -> dict[str, Any]:
    context = [report(report_id), patient(), study()]
    return notification(topic, "DiagnosticReport-open", context, **kwargs)


def subscribe_form(
    topic: str, events: str = "Patient-open", **extra: str
) -> dict[str, str]:
    form = {
        "hub.channel.type": "websocket",
        "hub.mode": "subscribe",
        "hub.topic": topic,
        "hub.events": events,
    }
    form.update(extra)
    return form


async def post_form(url: str, form: Any) -> httpx2.Response:
    """POST form data (a dict, or pairs to repeat a parameter) as it is."""
    pairs = form.items() if isinstance(form, dict) else form
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(
            url,
            content=urlencode(list(pairs)).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )


async def post_event(
    url: str,
    body: Any,
    *,
    content_type: str = "application/json",
) -> httpx2.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(
            url, content=content, headers={"Content-Type": content_type}
        )


async def recv_json(socket: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), timeout))
    return message


async def collect_events(
    connection: Connection, count: int, timeout: float = 5.0
) -> list[dict[str, Any]]:
    return [await connection.next_event(timeout) for _ in range(count)]


async def sync_errors(
    client: HubClient, topic: str, name: str = "watcher"
) -> tuple[str, Connection]:
    """Subscribe a SyncError watcher; the caller opens the returned connection."""
    endpoint = await client.subscribe(topic, ["SyncError"], subscriber_name=name)
    return endpoint, client.connect(endpoint)


async def raw_connect(url: str, **kwargs: Any) -> ClientConnection:
    return await websockets.connect(url, **kwargs)
