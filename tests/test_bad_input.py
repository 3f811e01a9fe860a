"""Bad input: each answered with its status and an OperationOutcome, and the
hub serving normally afterwards."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from builders import (
    new_topic,
    notification,
    patient,
    patient_open,
    post_event,
    post_form,
    recv_json,
    subscribe_form,
)
from conftest import RunningHub, StartHub


async def assert_still_serving(hub: RunningHub) -> None:
    """A normal subscribe, connect, event and delivery still work."""
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])
    sent = patient_open(topic)
    async with client.connect(endpoint) as connection:
        assert await client.send(sent) == 202
        assert (await connection.next_event())["id"] == sent["id"]


def assert_outcome(response: httpx2.Response, status: int) -> None:
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    assert outcome["issue"][0]["diagnostics"]


def _event_without(*path: str) -> dict[str, Any]:
    body = patient_open(new_topic())
    container = body
    for name in path[:-1]:
        container = container[name]
    del container[path[-1]]
    return body


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        pytest.param(b'{"timestamp": ', "application/json", 400, id="malformed-json"),
        pytest.param(b"\xff\xfe", "application/fhir+json", 400, id="not-utf8"),
        pytest.param(b"", "application/json", 400, id="empty-body"),
        pytest.param(_event_without("event", "hub.event"), None, 400, id="no-event"),
        pytest.param(_event_without("id"), None, 400, id="no-id"),
        pytest.param(_event_without("timestamp"), None, 400, id="no-timestamp"),
        pytest.param(_event_without("event", "context"), None, 400, id="no-context"),
        pytest.param(
            notification(new_topic(), "ient-op", [patient()]), None, 400, id="ient-op"
        ),
        pytest.param(patient_open(new_topic()), "text/plain", 415, id="text-plain"),
        pytest.param(patient_open(new_topic()), "", 415, id="no-content-type"),
    ],
)
async def test_bad_input_event_is_refused(
    hub: RunningHub, body: Any, content_type: str | None, status: int
) -> None:
    response = await post_event(
        hub.hub_url,
        body,
        content_type="application/json" if content_type is None else content_type,
    )

    assert_outcome(response, status)
    await assert_still_serving(hub)


async def test_bad_input_body_over_the_limit_is_413(start_hub: StartHub) -> None:
    hub = await start_hub(max_body_bytes=1000)
    body = patient_open(new_topic())
    body["event"]["context"][0]["resource"]["text"] = "x" * 2000

    assert_outcome(await post_event(hub.hub_url, body), 413)
    form = subscribe_form(new_topic(), **{"subscriber.name": "x" * 2000})
    assert_outcome(await post_form(hub.hub_url, form), 413)
    await assert_still_serving(hub)


async def test_bad_input_streamed_body_over_the_limit_is_413(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(max_body_bytes=1000)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 500

    async with httpx2.AsyncClient() as http:
        response = await http.post(
            hub.hub_url,
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )

    assert "content-length" not in response.request.headers
    assert_outcome(response, 413)
    await assert_still_serving(hub)


@pytest.mark.parametrize("missing", ["hub.topic", "hub.events"])
async def test_bad_input_subscribe_without_topic_or_events(
    hub: RunningHub, missing: str
) -> None:
    form = subscribe_form(new_topic())
    del form[missing]

    assert_outcome(await post_form(hub.hub_url, form), 400)
    await assert_still_serving(hub)


async def test_bad_input_topic_in_the_path_differs_from_the_body(
    hub: RunningHub,
) -> None:
    response = await post_event(f"{hub.hub_url}/other", patient_open(new_topic()))

    assert_outcome(response, 400)
    await assert_still_serving(hub)


async def test_bad_input_spaced_events_grant_the_same(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    spaced = await post_form(
        hub.hub_url, subscribe_form(topic, "Patient-open, ImagingStudy-open")
    )
    plain = await post_form(
        hub.hub_url, subscribe_form(topic, "Patient-open,ImagingStudy-open")
    )

    confirmations = []
    for response in (spaced, plain):
        assert response.status_code == 202
        async with client.connect(response.json()["hub.channel.endpoint"]) as conn:
            confirmations.append(conn.confirmation["hub.events"])
    assert confirmations == ["Patient-open,ImagingStudy-open"] * 2


async def test_bad_input_frame_that_is_not_json_keeps_the_socket(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(ack_timeout=0.5)
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])

    async with client.connect(endpoint) as connection:
        await connection.socket.send("this is not JSON")
        outcome = await connection.receive()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "invalid"
        await connection.socket.send(json.dumps(["an", "array"]))
        assert (await connection.receive())["resourceType"] == "OperationOutcome"
        sent = patient_open(topic)
        await client.send(sent)
        assert (await connection.next_event())["id"] == sent["id"]

    await assert_still_serving(hub)


async def test_bad_input_frame_over_the_limit_closes_with_1009(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(max_frame_bytes=1024)
    endpoint = await hub.client().subscribe(new_topic(), ["Patient-open"])

    async with websockets.connect(endpoint) as socket:
        await recv_json(socket)
        await socket.send(json.dumps({"id": "x" * 4096, "status": 200}))
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(socket)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    await assert_still_serving(hub)


async def test_bad_input_subscriber_that_never_connects_delays_no_one(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(ack_timeout=30)
    client = hub.client()
    topic = new_topic()
    for _ in range(3):
        await client.subscribe(topic, ["Patient-open"])
    endpoint = await client.subscribe(topic, ["Patient-open"])

    async with client.connect(endpoint) as connection:
        for index in range(20):
            sent = patient_open(topic, f"p{index}")
            await client.send(sent)
            event = await connection.next_event(timeout=2)
            assert event["id"] == sent["id"]
    await asyncio.sleep(0)
