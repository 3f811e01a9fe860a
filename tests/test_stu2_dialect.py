"""The STU2 dialect on a real hub: shapes, examples, wildcards, discovery."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import httpx2
import pytest

from conftest import RunningHub, StartHub, spec_example
from fhircast_hub.client import Connection
from stu2_support import WEBHOOK_SETTINGS, CallbackServer, stu2_subscribe, stu2_url


@pytest.fixture
async def hub(start_hub: StartHub) -> RunningHub:
    return await start_hub(**WEBHOOK_SETTINGS)


async def post_stu2(hub: RunningHub, event: dict[str, Any]) -> int:
    async with httpx2.AsyncClient() as http:
        response = await http.post(stu2_url(hub), json=event)
    return response.status_code


async def stu2_websocket(hub: RunningHub, topic: str, events: str) -> str:
    form = {
        "hub.channel.type": "websocket",
        "hub.mode": "subscribe",
        "hub.topic": topic,
        "hub.events": events,
    }
    async with httpx2.AsyncClient() as http:
        response = await http.post(stu2_url(hub), data=form)
    assert response.status_code == 202
    endpoint: str = response.json()["hub.channel.endpoint"]
    return endpoint


async def test_stu2_webhook_and_stu3_websocket_get_one_event_each_in_its_shape(
    hub: RunningHub,
) -> None:
    event = spec_example("stu3-3-3-1-Patient-open-1.json")
    topic = event["event"]["hub.topic"]
    client = hub.client()
    stu3_endpoint = await client.subscribe(topic, ["Patient-open"])
    stu2_endpoint = await stu2_websocket(hub, topic, "patient-open")
    async with (
        CallbackServer() as server,
        client.connect(stu3_endpoint) as stu3_socket,
        Connection(stu2_endpoint) as stu2_socket,
    ):
        await stu2_subscribe(
            hub, topic=topic, events="patient-open", callback=server.url()
        )
        assert await client.send(event) == 202
        stu3_event = await stu3_socket.next_event()
        stu2_event = await stu2_socket.next_event()
        await hub.hub.webhooks.drain()

    [post] = server.posts
    webhook_event = post.json()
    assert stu2_socket.confirmation["hub.events"] == "patient-open"
    for stu2_shape in (webhook_event, stu2_event):
        assert stu2_shape["id"] == event["id"]
        assert stu2_shape["event"]["hub.event"] == "patient-open"
        assert "context.versionId" not in stu2_shape["event"]
        assert stu2_shape["event"]["context"] == event["event"]["context"]
    assert stu3_event["id"] == event["id"]
    assert stu3_event["event"]["hub.event"] == "Patient-open"
    assert stu3_event["event"]["context.versionId"]


@pytest.mark.parametrize(
    "name",
    [
        "stu2-patient-open-1.json",
        "stu2-patient-close-1.json",
        "stu2-imagingstudy-open-1.json",
        "stu2-imagingstudy-close-1.json",
        "stu2-syncerror-1.json",
        "stu2-userlogout-1.json",
        "stu2-userhibernate-1.json",
        "stu2-multitab-considerations-1.json",
    ],
)
async def test_stu2_examples_are_accepted_and_delivered_unchanged(
    hub: RunningHub, name: str
) -> None:
    example = spec_example(name)
    topic = example["event"]["hub.topic"]
    event_name = example["event"]["hub.event"]
    async with CallbackServer() as server:
        await stu2_subscribe(hub, topic=topic, events=event_name, callback=server.url())
        if event_name.endswith("-close"):
            # The matching open first, under its own id: the examples share one.
            opening = copy.deepcopy(example)
            opening["id"] = str(uuid.uuid4())
            opening["event"]["hub.event"] = event_name.replace("-close", "-open")
            assert await post_stu2(hub, opening) == 202

        assert await post_stu2(hub, example) == 202
        await hub.hub.webhooks.drain()

    [post] = server.posts
    assert post.json() == example


async def test_stu2_wildcards_are_expanded(hub: RunningHub) -> None:
    topic = str(uuid.uuid4())
    patient = spec_example("stu2-patient-open-1.json")
    patient["event"]["hub.topic"] = topic
    closing = copy.deepcopy(patient)
    closing["id"] = str(uuid.uuid4())
    closing["event"]["hub.event"] = "patient-close"
    async with CallbackServer() as server:
        await stu2_subscribe(hub, topic=topic, events="*-open", callback=server.url())
        assert await post_stu2(hub, patient) == 202
        assert await post_stu2(hub, closing) == 202
        await hub.hub.webhooks.drain()

    granted = server.gets("subscribe")[0].params["hub.events"].split(",")
    assert sorted(granted) == [
        "diagnosticreport-open",
        "encounter-open",
        "home-open",
        "imagingstudy-open",
        "patient-open",
    ]
    assert [post.json()["event"]["hub.event"] for post in server.posts] == [
        "patient-open"
    ]


@pytest.mark.parametrize(
    ("url_path", "events", "status"),
    [
        pytest.param("/fhircast/STU2", "patient-*", 202, id="stu2-resource-wildcard"),
        pytest.param("/fhircast/STU2", "pat*-open", 400, id="stu2-partial-wildcard"),
        pytest.param("/fhircast/STU2", "foo-*", 400, id="stu2-matches-nothing"),
        pytest.param("/fhircast/STU3", "*-open", 400, id="stu3-refuses"),
    ],
)
async def test_wildcards_by_version(
    hub: RunningHub, url_path: str, events: str, status: int
) -> None:
    form = {
        "hub.channel.type": "websocket",
        "hub.mode": "subscribe",
        "hub.topic": "t",
        "hub.events": events,
    }
    async with httpx2.AsyncClient() as http:
        response = await http.post(hub.base_url + url_path, data=form)

    assert response.status_code == status


async def test_stu2_discovery_announces_webhooks(hub: RunningHub) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{stu2_url(hub)}/.well-known/fhircast-configuration")

    assert response.status_code == 200
    configuration = response.json()
    assert configuration["webhookSupport"] is True
    assert configuration["websocketSupport"] is True
    assert configuration["fhircastVersion"] == "STU2"
    assert "patient-open" in configuration["eventsSupported"]
    assert "syncerror" in configuration["eventsSupported"]


async def test_stu2_current_context_is_the_context_array(hub: RunningHub) -> None:
    example = spec_example("stu2-patient-open-1.json")
    topic = example["event"]["hub.topic"]
    closing = copy.deepcopy(example)
    closing["id"] = str(uuid.uuid4())
    closing["event"]["hub.event"] = "patient-close"
    async with httpx2.AsyncClient() as http:
        assert await post_stu2(hub, example) == 202
        opened = (await http.get(f"{stu2_url(hub)}/{topic}")).json()
        stu3 = await hub.client().current_context(topic)
        assert await post_stu2(hub, closing) == 202
        closed = (await http.get(f"{stu2_url(hub)}/{topic}")).json()

    assert opened == example["event"]["context"]
    assert stu3["context.type"] == "Patient"
    assert closed == []


async def test_stu2_websocket_unsubscribe_denies_and_closes(hub: RunningHub) -> None:
    topic = str(uuid.uuid4())
    endpoint = await stu2_websocket(hub, topic, "patient-open")
    async with Connection(endpoint) as socket:
        form = {
            "hub.channel.type": "websocket",
            "hub.mode": "unsubscribe",
            "hub.topic": topic,
            "hub.channel.endpoint": endpoint,
            "hub.lease_seconds": "10",
        }
        async with httpx2.AsyncClient() as http:
            response = await http.post(stu2_url(hub), data=form)
        denial = await socket.receive()
        await socket.socket.wait_closed()

    assert response.status_code == 202
    assert denial["hub.mode"] == "denied"
    assert denial["hub.events"] == "patient-open"
    assert await hub.hub.store.get_subscription(endpoint.rsplit("/", 1)[1]) is None


async def test_stu2_webhook_gets_the_derived_open_it_would_otherwise_miss(
    hub: RunningHub,
) -> None:
    event = spec_example("stu3-3-4-1-Encounter-open-1.json")
    topic = event["event"]["hub.topic"]
    async with CallbackServer() as patient_only, CallbackServer() as both:
        await stu2_subscribe(
            hub, topic=topic, events="patient-open", callback=patient_only.url()
        )
        await stu2_subscribe(
            hub, topic=topic, events="patient-open,encounter-open", callback=both.url()
        )
        assert await hub.client().send(event) == 202
        await hub.hub.webhooks.drain()

    [derived] = [post.json() for post in patient_only.posts]
    assert derived["event"]["hub.event"] == "patient-open"
    [patient] = [e for e in event["event"]["context"] if e["key"] == "patient"]
    assert derived["event"]["context"][0]["resource"]["id"] == patient["resource"]["id"]
    assert [post.json()["event"]["hub.event"] for post in both.posts] == [
        "encounter-open"
    ]
