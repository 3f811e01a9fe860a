"""Callback safety: https only and public addresses only, unless allowed."""

from __future__ import annotations

import uuid

import httpx2
import pytest

from conftest import StartHub, spec_example
from fhircast_hub.channels.callbacks import (
    CallbackPolicy,
    CallbackRefused,
    GuardedTransport,
)
from fhircast_hub.stu2 import webhook_endpoint_id
from fhircast_hub.subscriptions import Subscription
from stu2_support import CallbackServer, stu2_subscribe


@pytest.mark.parametrize(
    "callback",
    [
        pytest.param("http://example.com/cb", id="plain-http"),
        pytest.param("ftp://example.com/cb", id="other-scheme"),
        pytest.param("https://127.0.0.1/cb", id="loopback"),
        pytest.param("https://localhost:8443/cb", id="localhost-name"),
        pytest.param("https://[::1]/cb", id="ipv6-loopback"),
        pytest.param("https://[::ffff:127.0.0.1]/cb", id="ipv4-mapped-loopback"),
        pytest.param("https://10.1.2.3/cb", id="private-10"),
        pytest.param("https://192.168.0.10/cb", id="private-192"),
        pytest.param("https://172.16.0.1/cb", id="private-172"),
        pytest.param("https://169.254.169.254/latest/meta-data", id="metadata"),
        pytest.param("https://[fe80::1]/cb", id="ipv6-link-local"),
        pytest.param("https://[fd00:ec2::254]/cb", id="ipv6-unique-local"),
        pytest.param("https://100.64.0.1/cb", id="shared-address-space"),
        pytest.param("https://0.0.0.0/cb", id="unspecified"),
    ],
)
async def test_refused_callbacks_are_answered_400_without_a_request(
    start_hub: StartHub, callback: str
) -> None:
    hub = await start_hub()

    response = await stu2_subscribe(
        hub, topic="t", events="patient-open", callback=callback
    )

    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_http_callback_is_allowed_by_the_setting(start_hub: StartHub) -> None:
    hub = await start_hub(webhook_allow_http=True, webhook_allow_private=True)
    async with CallbackServer() as server:
        response = await stu2_subscribe(
            hub, topic="t", events="patient-open", callback=server.url()
        )

    assert response.status_code == 202
    assert len(server.gets("subscribe")) == 1


async def test_private_callback_is_refused_with_only_http_allowed(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(webhook_allow_http=True)
    async with CallbackServer() as server:
        response = await stu2_subscribe(
            hub, topic="t", events="patient-open", callback=server.url()
        )

    assert response.status_code == 400
    assert server.received == []


async def test_guarded_transport_refuses_at_connect_time() -> None:
    policy = CallbackPolicy(allow_http=True, allow_private=False)
    async with (
        CallbackServer() as server,
        httpx2.AsyncClient(transport=GuardedTransport(policy)) as http,
    ):
        with pytest.raises(CallbackRefused):
            await http.post(server.url(), content=b"{}")
        with pytest.raises(CallbackRefused):
            await http.get(server.url().replace("127.0.0.1", "localhost"))

    assert server.received == []


async def test_guarded_transport_connects_when_allowed() -> None:
    policy = CallbackPolicy(allow_http=True, allow_private=True)
    async with (
        CallbackServer() as server,
        httpx2.AsyncClient(transport=GuardedTransport(policy)) as http,
    ):
        response = await http.post(server.url(), content=b"{}")

    assert response.status_code == 200
    assert len(server.posts) == 1


async def test_delivery_rechecks_the_address_and_reports_a_syncerror(
    start_hub: StartHub,
) -> None:
    # As if the callback's name resolved to a public address at subscribe
    # time and to loopback now: the subscription is in the store already.
    hub = await start_hub(webhook_allow_http=True)
    event = spec_example("stu3-3-3-1-Patient-open-1.json")
    topic = event["event"]["hub.topic"]
    client = hub.client()
    endpoint = await client.subscribe(topic, ["SyncError"], subscriber_name="watch")
    async with (
        CallbackServer() as server,
        client.connect(endpoint) as websocket,
    ):
        callback = server.url()
        await hub.hub.store.save_subscription(
            Subscription(
                endpoint=webhook_endpoint_id(topic, callback),
                topic=topic,
                events=("patient-open",),
                expires_at=float("inf"),
                channel_type="webhook",
                fhircast_version="STU2",
                callback=callback,
                secret=str(uuid.uuid4()),
            )
        )
        assert await client.send(event) == 202
        error = await websocket.next_event()

    assert server.received == []
    [issue] = error["event"]["context"][0]["resource"]["issue"]
    assert "public address" in issue["diagnostics"]


class _PinnedPolicy(CallbackPolicy):
    """Resolves one made-up name to loopback, as a checked answer would."""

    async def resolve(self, host: str, port: int) -> str:
        assert host == "callback.invalid"
        return "127.0.0.1"


async def test_guarded_transport_connects_to_the_checked_address() -> None:
    # "callback.invalid" never resolves: only the pinned address can connect.
    policy = _PinnedPolicy(allow_http=True, allow_private=False)
    async with (
        CallbackServer() as server,
        httpx2.AsyncClient(transport=GuardedTransport(policy)) as http,
    ):
        url = server.url("/cb?a=1").replace("127.0.0.1", "callback.invalid")
        response = await http.post(url, content=b"{}")

    assert response.status_code == 200
    [post] = server.posts
    assert post.headers["host"] == f"callback.invalid:{server.port}"
    assert (post.path, post.query) == ("/cb", "a=1")
