"""Current context over real HTTP and replay over real websockets
(DESIGN.md items 4 to 6)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from builders import (
    new_topic,
    notification,
    patient,
    patient_open,
    report_open,
    study,
    study_open,
)
from conftest import RunningHub
from fhircast_hub.client import HubClient, HubRequestError


EMPTY = {"context.type": "", "context": []}


def close_of(opened: dict[str, Any]) -> dict[str, Any]:
    name = opened["event"]["hub.event"].replace("-open", "-close")
    return notification(opened["event"]["hub.topic"], name, opened["event"]["context"])


async def current(client: HubClient, topic: str) -> dict[str, Any]:
    return await client.current_context(topic)


async def test_context_of_a_topic_created_by_subscribe_is_empty(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    await client.subscribe(topic, ["Patient-open"])

    assert await current(client, topic) == EMPTY


async def test_context_of_a_never_created_topic_is_404(hub: RunningHub) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{hub.hub_url}/{new_topic()}")

    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_context_of_a_topic_created_by_an_event(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    await client.send(notification(topic, "com.example.ping", []))

    assert await current(client, topic) == EMPTY


async def test_context_after_an_open_is_the_context_as_opened(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["ImagingStudy-open"])
    opened = study_open(topic)

    async with client.connect(endpoint) as connection:
        await client.send(opened)
        delivered = await connection.next_event()
    context = await current(client, topic)

    assert context["context.type"] == "ImagingStudy"
    assert context["context.versionId"]
    assert context["context.versionId"] == delivered["event"]["context.versionId"]
    *entries, content = context["context"]
    assert entries == opened["event"]["context"]
    assert content == {
        "key": "content",
        "resource": {"resourceType": "Bundle", "type": "collection", "entry": []},
    }


async def test_context_several_anchors_are_open_at_once(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    opened_patient = patient_open(topic)
    await client.send(opened_patient)
    await client.send(study_open(topic))

    assert (await current(client, topic))["context.type"] == "ImagingStudy"
    # The patient is still open: closing it is accepted, not a conflict.
    assert await client.send(close_of(opened_patient)) == 202
    assert (await current(client, topic))["context.type"] == "ImagingStudy"


async def test_context_close_of_the_current_leaves_it_empty(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    await client.send(patient_open(topic, "p1"))
    second = patient_open(topic, "p2")
    await client.send(second)

    await client.send(close_of(second))

    assert await current(client, topic) == EMPTY


async def test_context_reopen_makes_an_open_context_current(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    first = patient_open(topic, "p1")
    await client.send(first)
    await client.send(patient_open(topic, "p2"))

    await client.send(patient_open(topic, "p1"))

    context = await current(client, topic)
    assert context["context"][0] == first["event"]["context"][0]


async def test_context_close_of_what_is_not_open_is_409(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    await client.send(patient_open(topic, "p1"))

    with pytest.raises(HubRequestError) as refused:
        await client.send(close_of(patient_open(topic, "p2")))

    assert refused.value.status_code == 409
    assert refused.value.outcome["resourceType"] == "OperationOutcome"
    assert (await current(client, topic))["context.type"] == "Patient"


async def test_context_every_open_gets_a_new_version_id(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    versions = []
    for opened in (
        patient_open(topic, "p1"),
        study_open(topic),
        patient_open(topic, "p1"),
    ):
        await client.send(opened)
        versions.append((await current(client, topic))["context.versionId"])

    assert len(set(versions)) == 3


async def test_context_replay_sends_the_latest_open_of_each_anchor_type(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    events = [
        patient_open(topic, "p1", timestamp="2024-01-01T00:00:01Z"),
        study_open(topic, "s1", timestamp="2024-01-01T00:00:02Z"),
        patient_open(topic, "p2", timestamp="2024-01-01T00:00:03Z"),
        report_open(topic, "r1", timestamp="2024-01-01T00:00:04Z"),
        study_open(topic, "s2", timestamp="2024-01-01T00:00:05Z"),
    ]
    for event in events:
        await client.send(event)
    endpoint = await client.subscribe(
        topic, ["Patient-open", "ImagingStudy-open", "DiagnosticReport-open"]
    )

    async with client.connect(endpoint) as connection:
        replayed = [await connection.next_event() for _ in range(3)]
        with pytest.raises(TimeoutError):
            await connection.receive(timeout=0.3)

    expected = [events[2], events[3], events[4]]
    assert [event["id"] for event in replayed] == [e["id"] for e in expected]
    for event, original in zip(replayed, expected, strict=True):
        assert event["timestamp"] == original["timestamp"]
        assert event["event"]["context"] == original["event"]["context"]
        assert event["event"]["context.versionId"]


async def test_context_replay_is_filtered_by_the_granted_events(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    await client.send(patient_open(topic))
    opened_study = study_open(topic)
    await client.send(opened_study)
    endpoint = await client.subscribe(topic, ["ImagingStudy-open", "Patient-close"])

    async with client.connect(endpoint) as connection:
        assert (await connection.next_event())["id"] == opened_study["id"]
        with pytest.raises(TimeoutError):
            await connection.receive(timeout=0.3)


async def test_context_replay_skips_closed_contexts(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    opened_patient = patient_open(topic)
    opened_study = study_open(topic)
    for event in (opened_patient, opened_study, close_of(opened_study)):
        await client.send(event)
    endpoint = await client.subscribe(topic, ["Patient-open", "ImagingStudy-open"])

    async with client.connect(endpoint) as connection:
        assert (await connection.next_event())["id"] == opened_patient["id"]
        with pytest.raises(TimeoutError):
            await connection.receive(timeout=0.3)


async def test_context_replay_precedes_live_events(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    opened = patient_open(topic)
    await client.send(opened)
    endpoint = await client.subscribe(topic, ["Patient-open", "com.example.ping"])

    async with client.connect(endpoint) as connection:
        ping = notification(topic, "com.example.ping", [study()])
        await client.send(ping)
        received = [await connection.next_event() for _ in range(2)]

    assert [event["id"] for event in received] == [opened["id"], ping["id"]]


async def test_context_select_of_a_non_current_report_is_409(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    await client.send(report_open(topic, "r1"))
    await client.send(report_open(topic, "r2"))
    select = notification(
        topic,
        "DiagnosticReport-select",
        [
            {"key": "report", "reference": {"reference": "DiagnosticReport/r1"}},
            patient(),
            {"key": "select", "reference": {"reference": "Patient/p1"}},
        ],
    )

    with pytest.raises(HubRequestError) as refused:
        await client.send(select)

    assert refused.value.status_code == 409
