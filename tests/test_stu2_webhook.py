"""STU2 webhooks against real callback servers: verification, delivery, leases."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from starlette.responses import PlainTextResponse, Response

from conftest import RunningHub, StartHub, spec_example
from stu2_support import (
    WEBHOOK_SETTINGS,
    CallbackServer,
    signed_with,
    stu2_subscribe,
)


PATIENT_OPEN = "stu3-3-3-1-Patient-open-1.json"


def patient_open(topic: str) -> dict[str, Any]:
    """The STU3 Patient-open example, on ``topic``, with a fresh id."""
    event = spec_example(PATIENT_OPEN)
    event["id"] = str(uuid.uuid4())
    event["event"]["hub.topic"] = topic
    return event


async def publish(hub: RunningHub, event: dict[str, Any]) -> None:
    """Publish through the STU3 URL, then wait until webhook deliveries end."""
    assert await hub.client().send(event) == 202
    await hub.hub.webhooks.drain()


@pytest.fixture
async def hub(start_hub: StartHub) -> RunningHub:
    return await start_hub(**WEBHOOK_SETTINGS)


async def test_webhook_verification_get_keeps_the_callback_query_string(
    hub: RunningHub,
) -> None:
    topic = str(uuid.uuid4())
    async with CallbackServer() as server:
        response = await stu2_subscribe(
            hub,
            topic=topic,
            events="Patient-open,patient-close",
            callback=server.url("/cb?tenant=a%20b&x=1"),
            lease_seconds=600,
        )

    assert response.status_code == 202
    assert response.content == b""
    [verification] = server.received
    assert verification.method == "GET"
    assert verification.path == "/cb"
    assert verification.query.startswith("tenant=a%20b&x=1&")
    params = verification.params
    assert params["tenant"] == "a b"
    assert params["x"] == "1"
    assert params["hub.mode"] == "subscribe"
    assert params["hub.topic"] == topic
    assert params["hub.events"] == "patient-open,patient-close"
    assert len(params["hub.challenge"]) >= 32
    assert 0 < int(params["hub.lease_seconds"]) <= 600


async def test_webhook_delivery_is_signed_and_keeps_the_query_string(
    hub: RunningHub,
) -> None:
    topic = str(uuid.uuid4())
    secret = "s3cret-of-this-subscriber"
    event = patient_open(topic)
    async with CallbackServer() as server:
        await stu2_subscribe(
            hub,
            topic=topic,
            events="patient-open",
            callback=server.url("/cb?tenant=a"),
            secret=secret,
        )
        await publish(hub, event)

    [post] = server.posts
    assert post.path == "/cb"
    assert post.query == "tenant=a"
    assert post.headers["content-type"] == "application/json"
    assert signed_with(secret, post)
    assert not signed_with("another secret", post)
    delivered = post.json()
    assert delivered["id"] == event["id"]
    assert delivered["event"]["hub.event"] == "patient-open"
    assert delivered["event"]["context"] == event["event"]["context"]


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda challenge: PlainTextResponse("not it"), id="wrong-body"),
        pytest.param(lambda challenge: PlainTextResponse("", 404), id="404"),
        pytest.param(lambda challenge: PlainTextResponse(challenge, 500), id="500"),
        pytest.param(
            lambda challenge: Response(status_code=302, headers={"location": "/x"}),
            id="redirect",
        ),
    ],
)
async def test_webhook_failed_verification_leaves_no_subscription(
    hub: RunningHub, answer: Any
) -> None:
    topic = str(uuid.uuid4())
    async with CallbackServer(verify=answer) as server:
        response = await stu2_subscribe(
            hub, topic=topic, events="patient-open", callback=server.url()
        )
        assert response.status_code == 202
        await publish(hub, patient_open(topic))

    assert len(server.gets("subscribe")) == 1
    assert server.posts == []
    assert await hub.hub.store.list_webhook_subscriptions(topic) == []


async def test_webhook_unsubscribe_sends_no_get_and_ends_delivery(
    hub: RunningHub,
) -> None:
    topic = str(uuid.uuid4())
    async with CallbackServer() as server:
        await stu2_subscribe(
            hub, topic=topic, events="patient-open", callback=server.url()
        )
        assert len(server.gets("subscribe")) == 1

        response = await stu2_subscribe(
            hub,
            topic=topic,
            events="",
            callback=server.url(),
            mode="unsubscribe",
            lease_seconds=10,
        )
        await publish(hub, patient_open(topic))

    assert response.status_code == 202
    assert [request.mode for request in server.received] == ["subscribe"]
    assert server.posts == []
    assert await hub.hub.store.list_webhook_subscriptions(topic) == []


async def test_webhook_unsubscribe_of_an_unknown_callback_is_404(
    hub: RunningHub,
) -> None:
    response = await stu2_subscribe(
        hub,
        topic="t",
        events="",
        callback="http://127.0.0.1:9/never",
        mode="unsubscribe",
    )

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("secret", "status"),
    [
        pytest.param("x" * 199, 202, id="199-bytes"),
        pytest.param("x" * 200, 400, id="200-bytes"),
        pytest.param("é" * 100, 400, id="200-bytes-in-100-characters"),
    ],
)
async def test_webhook_secret_must_be_under_200_bytes(
    hub: RunningHub, secret: str, status: int
) -> None:
    async with CallbackServer() as server:
        response = await stu2_subscribe(
            hub, topic="t", events="patient-open", callback=server.url(), secret=secret
        )

    assert response.status_code == status
    assert secret not in response.text
    assert len(server.received) == (1 if status == 202 else 0)


async def test_webhook_that_hangs_does_not_delay_another_subscriber(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(**{**WEBHOOK_SETTINGS, "webhook_timeout": 60.0})
    topic = str(uuid.uuid4())
    event = patient_open(topic)
    second = patient_open(topic)
    async with (
        CallbackServer(hold_posts=True) as hanging,
        CallbackServer(post_status=500) as failing,
        CallbackServer() as healthy,
    ):
        for server in (hanging, failing, healthy):
            await stu2_subscribe(
                hub, topic=topic, events="patient-open", callback=server.url()
            )

        # The publisher is answered while one callback hangs and one fails,
        # and the healthy one gets both events whatever the delivery order.
        client = hub.client()
        assert await client.send(event) == 202
        assert await client.send(second) == 202
        await healthy.wait_for(lambda server: len(server.posts) == 2)
        await hanging.wait_for(lambda server: len(server.posts) == 1)

        assert not hanging.release.is_set()
        assert [post.json()["id"] for post in healthy.posts] == [
            event["id"],
            second["id"],
        ]


async def test_webhook_retries_then_sends_a_syncerror(hub: RunningHub) -> None:
    topic = str(uuid.uuid4())
    event = patient_open(topic)
    client = hub.client()
    endpoint = await client.subscribe(topic, ["SyncError"], subscriber_name="ws")
    async with (
        CallbackServer(post_status=503) as failing,
        CallbackServer() as watcher,
        client.connect(endpoint) as websocket,
    ):
        await stu2_subscribe(
            hub, topic=topic, events="patient-open", callback=failing.url()
        )
        await stu2_subscribe(
            hub, topic=topic, events="syncerror", callback=watcher.url()
        )
        await publish(hub, event)
        await watcher.wait_for(lambda server: len(server.posts) == 1)
        stu3_error = await websocket.next_event()

    # Every attempt carries the same event, id included.
    attempts = failing.posts
    assert len(attempts) == 1 + WEBHOOK_SETTINGS["webhook_retries"]
    assert {attempt.body for attempt in attempts} == {attempts[0].body}
    assert attempts[0].json()["id"] == event["id"]

    stu2_error = watcher.posts[0].json()
    assert stu2_error["event"]["hub.event"] == "syncerror"
    [issue] = stu2_error["event"]["context"][0]["resource"]["issue"]
    assert issue["code"] == "processing"
    codes = {coding["system"]: coding["code"] for coding in issue["details"]["coding"]}
    system = "https://fhircast.hl7.org/events/syncerror"
    assert codes[f"{system}/eventid"] == event["id"]
    assert codes[f"{system}/eventname"] == "patient-open"
    assert "503" in issue["diagnostics"]

    assert stu3_error["event"]["hub.event"] == "SyncError"
    [stu3_issue] = stu3_error["event"]["context"][0]["resource"]["issue"]
    stu3_codes = {c["system"]: c["code"] for c in stu3_issue["details"]["coding"]}
    assert stu3_codes[f"{system}/eventname"] == "Patient-open"


async def test_webhook_retry_that_succeeds_sends_no_syncerror(
    hub: RunningHub,
) -> None:
    topic = str(uuid.uuid4())
    event = patient_open(topic)
    async with (
        CallbackServer(post_statuses=[502]) as flaky,
        CallbackServer() as watcher,
    ):
        await stu2_subscribe(
            hub, topic=topic, events="patient-open", callback=flaky.url()
        )
        await stu2_subscribe(
            hub, topic=topic, events="syncerror", callback=watcher.url()
        )
        await publish(hub, event)

    assert [post.json()["id"] for post in flaky.posts] == [event["id"]] * 2
    assert watcher.posts == []


async def test_webhook_answer_4xx_is_not_retried_and_reported(
    hub: RunningHub,
) -> None:
    topic = str(uuid.uuid4())
    async with (
        CallbackServer(post_status=409) as refusing,
        CallbackServer() as watcher,
    ):
        await stu2_subscribe(
            hub, topic=topic, events="patient-open", callback=refusing.url()
        )
        await stu2_subscribe(
            hub, topic=topic, events="syncerror", callback=watcher.url()
        )
        await publish(hub, patient_open(topic))
        await watcher.wait_for(lambda server: len(server.posts) == 1)

    assert len(refusing.posts) == 1
    assert "409" in watcher.posts[0].body.decode()


async def test_webhook_lease_expiry_sends_a_denial_get(hub: RunningHub) -> None:
    topic = str(uuid.uuid4())
    async with CallbackServer() as server:
        await stu2_subscribe(
            hub,
            topic=topic,
            events="patient-open,syncerror",
            callback=server.url("/cb?k=v"),
            lease_seconds=1,
        )
        await server.wait_for(lambda server: len(server.gets("denied")) == 1)
        await publish(hub, patient_open(topic))

    [denial] = server.gets("denied")
    params = denial.params
    assert params["k"] == "v"
    assert params["hub.topic"] == topic
    assert params["hub.events"] == "patient-open,syncerror"
    assert params["hub.reason"]
    assert server.posts == []
    assert await hub.hub.store.list_webhook_subscriptions(topic) == []


async def test_webhook_resubscribe_replaces_the_events(hub: RunningHub) -> None:
    topic = str(uuid.uuid4())
    async with CallbackServer() as server:
        await stu2_subscribe(
            hub, topic=topic, events="patient-open", callback=server.url()
        )
        await stu2_subscribe(
            hub, topic=topic, events="patient-close", callback=server.url()
        )
        await publish(hub, patient_open(topic))

    [subscription] = await hub.hub.store.list_webhook_subscriptions(topic)
    assert subscription.events == ("patient-close",)
    assert server.posts == []
