"""Subscribe requests over real HTTP: answers, refusals, event sets, leases."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from builders import new_topic, patient_open, post_form, subscribe_form, sync_errors
from conftest import RunningHub, StartHub


def assert_outcome(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    outcome: dict[str, Any] = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["diagnostics"]
    return outcome


async def test_subscribe_answers_202_with_a_ws_endpoint(hub: RunningHub) -> None:
    response = await post_form(hub.hub_url, subscribe_form(new_topic()))

    assert response.status_code == 202
    endpoint = response.json()["hub.channel.endpoint"]
    assert endpoint.startswith(f"ws://127.0.0.1:{hub.server.config.port}/ws/")


@pytest.mark.parametrize(
    ("change", "remove"),
    [
        pytest.param({}, "hub.channel.type", id="no-channel-type"),
        pytest.param({"hub.channel.type": "webhook"}, None, id="webhook"),
        pytest.param({"hub.channel.type": ""}, None, id="empty-channel-type"),
        pytest.param({}, "hub.mode", id="no-mode"),
        pytest.param({"hub.mode": "publish"}, None, id="wrong-mode"),
        pytest.param({}, "hub.topic", id="no-topic"),
        pytest.param({"hub.topic": " "}, None, id="blank-topic"),
        pytest.param({}, "hub.events", id="no-events"),
        pytest.param({"hub.events": ""}, None, id="empty-events"),
        pytest.param({"hub.events": " , "}, None, id="only-commas"),
        pytest.param({"hub.events": "Patient-open,Banana"}, None, id="unknown-event"),
        pytest.param({"hub.events": "*-open"}, None, id="wildcard"),
        pytest.param({"hub.events": "ient-op"}, None, id="partial-name"),
        pytest.param({"hub.lease_seconds": "-5"}, None, id="negative-lease"),
        pytest.param({"hub.lease_seconds": "soon"}, None, id="lease-not-a-number"),
    ],
)
async def test_subscribe_refuses_a_bad_request_with_400(
    hub: RunningHub, change: dict[str, str], remove: str | None
) -> None:
    topic = new_topic()
    form = {**subscribe_form(topic), **change}
    if remove is not None:
        del form[remove]

    response = await post_form(hub.hub_url, form)

    outcome = assert_outcome(response, 400)
    assert outcome["issue"][0]["code"] == "invalid"
    # A refused subscribe creates no topic.
    assert (await post_form(hub.hub_url, subscribe_form(topic))).status_code == 202


async def test_subscribe_refuses_a_parameter_given_twice(hub: RunningHub) -> None:
    form = [*subscribe_form(new_topic()).items(), ("hub.topic", "another")]

    response = await post_form(hub.hub_url, form)

    outcome = assert_outcome(response, 400)
    assert "hub.topic" in outcome["issue"][0]["diagnostics"]


async def test_subscribe_accepts_a_json_body(hub: RunningHub) -> None:
    topic = new_topic()
    body = {**subscribe_form(topic), "hub.events": "Patient-open,Patient-close"}
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(hub.hub_url, json=body)

    assert response.status_code == 202
    async with hub.client().connect(response.json()["hub.channel.endpoint"]) as conn:
        assert conn.confirmation["hub.topic"] == topic
        assert conn.confirmation["hub.events"] == "Patient-open,Patient-close"


@pytest.mark.parametrize(
    "events",
    [
        "Patient-open, ImagingStudy-open",
        " Patient-open ,ImagingStudy-open ",
        "patient-open,ImagingStudy-open,PATIENT-OPEN",
        "Patient-open,Patient-open,ImagingStudy-open,",
    ],
)
async def test_subscribe_treats_hub_events_as_a_trimmed_set(
    hub: RunningHub, events: str
) -> None:
    topic = new_topic()
    response = await post_form(hub.hub_url, subscribe_form(topic, events))
    assert response.status_code == 202

    client = hub.client()
    async with client.connect(response.json()["hub.channel.endpoint"]) as connection:
        assert connection.confirmation["hub.events"] == "Patient-open,ImagingStudy-open"
        await client.send(patient_open(topic))
        event = await connection.next_event()
        assert event["event"]["hub.event"] == "Patient-open"
        # Granted once: a repeated event is delivered once.
        with pytest.raises(TimeoutError):
            await connection.receive(timeout=0.3)


async def test_subscribe_records_the_subscriber_name(start_hub: StartHub) -> None:
    hub = await start_hub(ack_timeout=2)
    client = hub.client()
    topic = new_topic()
    _, watcher = await sync_errors(client, topic)
    endpoint = await client.subscribe(
        topic, ["Patient-open"], subscriber_name="Acme Viewer"
    )

    async with watcher, client.connect(endpoint, auto_ack=False) as viewer:
        await client.send(patient_open(topic))
        event = await viewer.receive()
        await viewer.ack(event["id"], 500)
        error = await watcher.next_event()

    outcome = error["event"]["context"][0]["resource"]
    assert "Acme Viewer" in outcome["issue"][0]["diagnostics"]
    codes = {c["system"].rsplit("/", 1)[1]: c["code"] for c in _codings(outcome)}
    assert codes["subscribername"] == "Acme Viewer"


def _codings(outcome: dict[str, Any]) -> list[dict[str, str]]:
    codings: list[dict[str, str]] = outcome["issue"][0]["details"]["coding"]
    return codings


async def test_subscribe_lease_defaults_when_none_is_asked(start_hub: StartHub) -> None:
    hub = await start_hub(lease_default=120, lease_max=600)
    client = hub.client()
    endpoint = await client.subscribe(new_topic(), ["Patient-open"])

    async with client.connect(endpoint) as connection:
        lease = connection.confirmation["hub.lease_seconds"]

    assert isinstance(lease, int)
    assert 118 <= lease <= 120


async def test_subscribe_lease_is_capped_at_the_maximum(start_hub: StartHub) -> None:
    hub = await start_hub(lease_default=120, lease_max=600)
    client = hub.client()
    endpoint = await client.subscribe(
        new_topic(), ["Patient-open"], lease_seconds=99999
    )

    async with client.connect(endpoint) as connection:
        assert 598 <= connection.confirmation["hub.lease_seconds"] <= 600


async def test_subscribe_lease_asked_below_the_maximum_is_granted(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(lease_default=120, lease_max=600)
    client = hub.client()
    endpoint = await client.subscribe(new_topic(), ["Patient-open"], lease_seconds=300)

    async with client.connect(endpoint) as connection:
        assert 298 <= connection.confirmation["hub.lease_seconds"] <= 300


async def test_subscribe_endpoints_are_unique_and_long(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    endpoints = [await client.subscribe(topic, ["Patient-open"]) for _ in range(50)]

    ids = [endpoint.rsplit("/", 1)[1] for endpoint in endpoints]
    assert len(set(ids)) == len(ids)
    # URL-safe base64: 6 bits a character; at least 128 bits of randomness.
    assert all(len(endpoint_id) * 6 >= 128 for endpoint_id in ids)
    assert len(set("".join(ids))) > 40


async def test_subscribe_creates_the_topic_with_an_empty_context(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    await client.subscribe(topic, ["Patient-open"])

    assert await client.current_context(topic) == {"context.type": "", "context": []}


async def test_subscribe_with_an_unknown_endpoint_is_refused(hub: RunningHub) -> None:
    form = subscribe_form(new_topic(), **{"hub.channel.endpoint": "no-such-endpoint"})

    response = await post_form(hub.hub_url, form)

    assert_outcome(response, 404)


async def test_unsubscribe_without_an_endpoint_is_refused(hub: RunningHub) -> None:
    form = subscribe_form(new_topic(), **{"hub.mode": "unsubscribe"})
    del form["hub.events"]

    response = await post_form(hub.hub_url, form)

    assert_outcome(response, 400)


async def test_unsubscribe_of_another_topics_endpoint_is_refused(
    hub: RunningHub,
) -> None:
    client = hub.client()
    endpoint = await client.subscribe(new_topic(), ["Patient-open"])
    form = {
        "hub.channel.type": "websocket",
        "hub.mode": "unsubscribe",
        "hub.topic": new_topic(),
        "hub.channel.endpoint": endpoint,
    }

    response = await post_form(hub.hub_url, form)

    assert_outcome(response, 400)
    async with client.connect(endpoint) as connection:
        assert connection.confirmation["hub.mode"] == "subscribe"


async def test_subscribe_answer_is_json(hub: RunningHub) -> None:
    response = await post_form(hub.hub_url, subscribe_form(new_topic()))

    assert response.headers["content-type"].startswith("application/json")
    assert set(json.loads(response.content)) == {"hub.channel.endpoint"}
