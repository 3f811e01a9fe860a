"""Acknowledgements and the SyncErrors the hub sends (DESIGN.md item 8)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from builders import new_topic, patient_open
from conftest import RunningHub, StartHub
from fhircast_hub.client import Connection, HubClient


SYSTEM = "https://fhircast.hl7.org/events/syncerror"


async def two_subscribers(
    hub: RunningHub, topic: str, failing_events: list[str] | None = None
) -> tuple[HubClient, str, str]:
    """A subscriber under test ("viewer") and a SyncError watcher."""
    client = hub.client()
    viewer = await client.subscribe(
        topic, failing_events or ["Patient-open", "SyncError"], subscriber_name="viewer"
    )
    watcher = await client.subscribe(topic, ["SyncError"], subscriber_name="watcher")
    return client, viewer, watcher


def check_sync_error(
    event: dict[str, Any], topic: str, event_id: str, subscriber: str
) -> str:
    assert event["event"]["hub.event"] == "SyncError"
    assert event["event"]["hub.topic"] == topic
    assert event["id"] and event["id"] != event_id
    assert event["timestamp"].endswith("Z")
    [entry] = event["event"]["context"]
    assert entry["key"] == "operationoutcome"
    outcome = entry["resource"]
    assert outcome["resourceType"] == "OperationOutcome"
    [issue] = outcome["issue"]
    assert issue["code"] == "processing"
    assert issue["severity"] == "warning"
    assert subscriber in issue["diagnostics"]
    codings = {c["system"]: c["code"] for c in issue["details"]["coding"]}
    assert codings == {
        f"{SYSTEM}/eventid": event_id,
        f"{SYSTEM}/eventname": "Patient-open",
        f"{SYSTEM}/subscribername": subscriber,
    }
    diagnostics: str = issue["diagnostics"]
    return diagnostics


async def assert_silent(connection: Connection, seconds: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await connection.receive(timeout=seconds)


@pytest.mark.parametrize("status", [200, "200", 202, "202", " 200 "])
async def test_syncerror_not_sent_for_a_success_ack(
    start_hub: StartHub, status: int | str
) -> None:
    hub = await start_hub(ack_timeout=0.3)
    topic = new_topic()
    client, viewer_url, watcher_url = await two_subscribers(hub, topic)

    async with (
        client.connect(viewer_url, auto_ack=False) as viewer,
        client.connect(watcher_url) as watcher,
    ):
        await client.send(patient_open(topic))
        event = await viewer.receive()
        await viewer.ack(event["id"], status)
        # Past the ack timeout: the ack was matched, so nothing is reported.
        await assert_silent(watcher, 0.6)
        second = patient_open(topic, "p2")
        await client.send(second)
        assert (await viewer.receive())["id"] == second["id"]


async def test_syncerror_not_sent_for_an_ack_without_status(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(ack_timeout=0.3)
    topic = new_topic()
    client, viewer_url, watcher_url = await two_subscribers(hub, topic)

    async with (
        client.connect(viewer_url, auto_ack=False) as viewer,
        client.connect(watcher_url) as watcher,
    ):
        await client.send(patient_open(topic))
        event = await viewer.receive()
        # As Medplum's client acknowledges: an id and no status.
        await viewer.socket.send(f'{{"id": "{event["id"]}"}}')
        await assert_silent(watcher, 0.6)


@pytest.mark.parametrize("status", [409, "409", 500, "500", 404])
async def test_syncerror_sent_to_others_on_an_error_ack(
    hub: RunningHub, status: int | str
) -> None:
    topic = new_topic()
    client, viewer_url, watcher_url = await two_subscribers(hub, topic)
    sent = patient_open(topic)

    async with (
        client.connect(viewer_url, auto_ack=False) as viewer,
        client.connect(watcher_url) as watcher,
    ):
        await client.send(sent)
        await viewer.ack((await viewer.receive())["id"], status)
        error = await watcher.next_event()
        diagnostics = check_sync_error(error, topic, sent["id"], "viewer")
        assert str(status) in diagnostics
        # Not to the failing subscriber, though it subscribed to SyncError.
        await assert_silent(viewer)


async def test_syncerror_ack_timeout_reports_and_unsubscribes(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(ack_timeout=0.3)
    topic = new_topic()
    client, viewer_url, watcher_url = await two_subscribers(hub, topic)
    sent = patient_open(topic)

    async with (
        client.connect(viewer_url, auto_ack=False) as viewer,
        client.connect(watcher_url) as watcher,
    ):
        await client.send(sent)
        await viewer.receive()
        error = await watcher.next_event()
        check_sync_error(error, topic, sent["id"], "viewer")

        denial = await viewer.receive()
        assert denial["hub.mode"] == "denied"
        with pytest.raises(ConnectionClosed):
            await viewer.receive()

    with pytest.raises(InvalidStatus) as refused:
        async with client.connect(viewer_url):
            pass
    assert refused.value.response.status_code == 404


async def test_syncerror_abnormal_close_is_reported(hub: RunningHub) -> None:
    topic = new_topic()
    client, viewer_url, watcher_url = await two_subscribers(hub, topic)
    sent = patient_open(topic)

    async with client.connect(watcher_url) as watcher:
        viewer = client.connect(viewer_url)
        await viewer.__aenter__()
        await client.send(sent)
        await viewer.next_event()
        # Kill the TCP connection: no close frame.
        viewer.socket.transport.abort()

        error = await watcher.next_event()
        diagnostics = check_sync_error(error, topic, sent["id"], "viewer")
        assert "abnormal" in diagnostics


@pytest.mark.parametrize("code", [1000, 1001])
async def test_syncerror_not_sent_for_a_normal_close(
    hub: RunningHub, code: int
) -> None:
    topic = new_topic()
    client, viewer_url, watcher_url = await two_subscribers(hub, topic)

    async with client.connect(watcher_url) as watcher:
        async with client.connect(viewer_url) as viewer:
            await client.send(patient_open(topic))
            await viewer.next_event()
            await viewer.close(code)
        await assert_silent(watcher, 0.5)


async def test_syncerror_not_sent_to_subscribers_without_it(hub: RunningHub) -> None:
    topic = new_topic()
    client, viewer_url, _ = await two_subscribers(hub, topic)
    bystander_url = await client.subscribe(topic, ["Patient-open"])
    sent = patient_open(topic)

    async with (
        client.connect(viewer_url, auto_ack=False) as viewer,
        client.connect(bystander_url) as bystander,
    ):
        await client.send(sent)
        assert (await bystander.next_event())["id"] == sent["id"]
        await viewer.ack((await viewer.receive())["id"], 409)
        await assert_silent(bystander, 0.5)


async def test_syncerror_error_ack_of_a_syncerror_is_not_reported(
    hub: RunningHub,
) -> None:
    topic = new_topic()
    client, viewer_url, watcher_url = await two_subscribers(hub, topic)
    third_url = await client.subscribe(topic, ["Patient-open"], subscriber_name="c")
    sent = patient_open(topic)

    async with (
        client.connect(viewer_url, auto_ack=False) as viewer,
        client.connect(watcher_url, auto_ack=False) as watcher,
        client.connect(third_url) as third,
    ):
        await client.send(sent)
        await third.next_event()
        await viewer.ack((await viewer.receive())["id"], 500)
        error = await watcher.receive()
        await watcher.ack(error["id"], 500)
        # No SyncError about a SyncError: the viewer hears nothing.
        await assert_silent(viewer, 0.5)
        await asyncio.sleep(0)
