"""Attacks on the hub: each answered with a clear status and an
OperationOutcome, never a 500, a hang, a silent drop or a leak."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import websockets
import websockets.sync.client
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from auth_support import RunningAuthServer, auth_settings
from builders import (
    new_topic,
    notification,
    patient,
    patient_open,
    post_event,
    post_form,
    report,
    report_open,
    subscribe_form,
)
from conftest import RunningHub, StartHub, free_port
from stu2_support import WEBHOOK_SETTINGS, CallbackServer, stu2_subscribe
from test_bad_input import assert_outcome, assert_still_serving
from test_cli import SRC


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _event_with(extra: bytes) -> bytes:
    """A Patient-open whose patient resource carries ``extra`` as raw JSON."""
    body = patient_open(new_topic())
    body["event"]["context"][0]["resource"]["extension"] = "@@"
    return json.dumps(body).encode().replace(b'"@@"', extra)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_nested(100_000), id="nested-document"),
        pytest.param(_event_with(_nested(5000)), id="nested-resource"),
        pytest.param(_event_with(_nested(900)), id="nested-below-the-parser-limit"),
    ],
)
async def test_deeply_nested_json_is_400(hub: RunningHub, body: bytes) -> None:
    assert_outcome(await post_event(hub.hub_url, body), 400)
    await assert_still_serving(hub)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_event_with(b"NaN"), id="NaN-in-a-resource"),
        pytest.param(_event_with(b"-Infinity"), id="Infinity-in-a-resource"),
        pytest.param(
            json.dumps({**subscribe_form(new_topic()), "hub.lease_seconds": "@@"})
            .encode()
            .replace(b'"@@"', b"Infinity"),
            id="Infinity-lease",
        ),
    ],
)
async def test_json_that_is_not_standard_is_400(hub: RunningHub, body: bytes) -> None:
    # Python reads NaN and Infinity; a subscriber's JSON parser would not.
    assert_outcome(await post_event(hub.hub_url, body), 400)
    await assert_still_serving(hub)


@pytest.mark.parametrize("lease", [1.5, "1e30", True])
async def test_lease_that_is_not_a_whole_number_is_400(
    hub: RunningHub, lease: Any
) -> None:
    body = {**subscribe_form(new_topic()), "hub.lease_seconds": lease}
    assert_outcome(await post_event(hub.hub_url, body), 400)


async def test_huge_whole_lease_is_capped(hub: RunningHub) -> None:
    body = {**subscribe_form(new_topic()), "hub.lease_seconds": 1e30}
    response = await post_event(hub.hub_url, body)
    assert response.status_code == 202, response.text
    async with hub.client().connect(response.json()["hub.channel.endpoint"]) as conn:
        assert conn.confirmation["hub.lease_seconds"] == hub.hub.settings.lease_max


async def test_deeply_nested_frame_is_answered_and_keeps_the_socket(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])

    async with client.connect(endpoint) as connection:
        await connection.socket.send(_nested(20_000).decode())
        outcome = await connection.receive()
        assert outcome["resourceType"] == "OperationOutcome"
        assert "nested" in outcome["issue"][0]["diagnostics"]
        sent = patient_open(topic)
        await client.send(sent)
        assert (await connection.next_event())["id"] == sent["id"]


async def test_body_cut_off_is_not_an_error(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = hub.base_url.removeprefix("http://").split(":")
    for framing in (b"Content-Length: 1000", b"Transfer-Encoding: chunked"):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /fhircast/STU3 HTTP/1.1\r\nHost: hub\r\n"
            b"Content-Type: application/json\r\n" + framing + b"\r\n\r\n"
            b'5\r\n{"id"\r\n'
        )
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()
        await writer.wait_closed()

    await asyncio.sleep(0.2)
    await assert_still_serving(hub)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_compressed_body_is_415(hub: RunningHub) -> None:
    body = gzip.compress(json.dumps(patient_open(new_topic())).encode())
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(
            hub.hub_url,
            content=body,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    assert_outcome(response, 415)
    assert "gzip" in response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("path", ["a/b", "a%2Fb"])
async def test_topic_with_a_slash_can_be_read(hub: RunningHub, path: str) -> None:
    topic = f"{new_topic()}/b"
    assert await hub.client().send(patient_open(topic)) == 202

    async with httpx2.AsyncClient(timeout=10) as http:
        read = await http.get(f"{hub.hub_url}/{path.replace('a', topic[:-2], 1)}")
        posted = await http.post(
            f"{hub.hub_url}/{path.replace('a', topic[:-2], 1)}",
            json=patient_open(topic, "p2"),
        )

    assert read.status_code == 200, read.text
    assert read.json()["context"][0]["resource"]["id"] == "p1"
    assert posted.status_code == 202, posted.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("GET", "/fhircast/STU3", 405),
        ("PUT", "/api/hub", 405),
    ],
)
async def test_unknown_path_or_method_is_an_operation_outcome(
    hub: RunningHub, method: str, path: str, status: int
) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.request(method, hub.base_url + path)

    assert_outcome(response, status)
    assert method in response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("bad", ["a\nb", "a\x00b", "a\x1b[31mb", "a\u2028b"])
async def test_control_characters_in_logged_values_are_400(
    hub: RunningHub, bad: str
) -> None:
    # Topics, event ids and subscriber names go into the log (ids and names
    # whole): a line break in one would forge log lines.
    topic = new_topic()
    for form in (
        subscribe_form(topic + bad),
        subscribe_form(topic, **{"subscriber.name": bad}),
    ):
        assert_outcome(await post_form(hub.hub_url, form), 400)
    assert_outcome(await post_event(hub.hub_url, patient_open(topic + bad)), 400)
    assert_outcome(
        await post_event(hub.hub_url, patient_open(topic, event_id=bad)), 400
    )
    await assert_still_serving(hub)


class _ServedHub:
    """``fhircast-hub serve`` in a process of its own, and what it printed."""

    def __init__(self, *options: str) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.output = ""
        self._command = [sys.executable, "-m", "fhircast_hub", "serve"]
        self._command += ["--port", str(port), *options]

    def __enter__(self) -> _ServedHub:
        self._process = subprocess.Popen(
            self._command,
            env={**os.environ, "PYTHONPATH": str(SRC)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx2.get(f"{self.base_url}/healthz")
                return self
            except httpx2.TransportError:
                assert time.monotonic() < deadline, "the hub did not start"
                time.sleep(0.1)

    def __exit__(self, *exc_info: object) -> None:
        self._process.send_signal(signal.SIGINT)
        self.output, _ = self._process.communicate(timeout=20)

    def subscribe(self, topic: str) -> str:
        response = httpx2.post(
            f"{self.base_url}/fhircast/STU3", data=subscribe_form(topic)
        )
        endpoint: str = response.json()["hub.channel.endpoint"]
        return endpoint


def test_serve_logs_no_whole_topic_endpoint_or_query() -> None:
    topic = new_topic()
    with _ServedHub() as served:
        endpoint = served.subscribe(topic)
        with websockets.sync.client.connect(endpoint) as socket:
            socket.recv(timeout=5)
        base = served.base_url
        httpx2.get(f"{base}/fhircast/STU3/{topic}?access_token=secret-token")
        httpx2.get(f"{base}/api/hub/{topic}")

    assert "WebSocket /ws/" in served.output
    assert f"/fhircast/STU3/{topic[:8]}" in served.output
    for secret in (topic, endpoint.rsplit("/", 1)[1], "secret-token"):
        assert secret not in served.output


@pytest.mark.parametrize("claimed", [5, "", ["topic"]])
async def test_token_with_an_unusable_topic_claim_grants_no_topic(
    start_hub: StartHub, auth_server: RunningAuthServer, claimed: Any
) -> None:
    # A hub.topic claim that is there but not a topic must not read as "any
    # topic": that would turn a token bound to one session into a master key.
    hub = await start_hub(**auth_settings("jwt", auth_server.issuer))
    claims = {**auth_server.dev.claims("fhircast/*.*", topic=None)}
    claims["hub.topic"] = claimed
    token = auth_server.dev.sign(claims)

    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(
            hub.hub_url,
            data=subscribe_form(new_topic()),
            headers={"Authorization": f"Bearer {token}"},
        )

    assert_outcome(response, 401)
    assert "hub.topic" in response.json()["issue"][0]["diagnostics"]


async def test_token_with_an_enormous_exp_is_not_a_500(
    start_hub: StartHub, auth_server: RunningAuthServer
) -> None:
    hub = await start_hub(**auth_settings("jwt", auth_server.issuer))
    topic = new_topic()
    claims = {**auth_server.dev.claims("fhircast/*.*", topic=topic), "exp": 10**400}
    token = auth_server.dev.sign(claims)

    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(
            hub.hub_url,
            data=subscribe_form(topic),
            headers={"Authorization": f"Bearer {token}"},
        )

    assert response.status_code == 202, response.text


class _TricklingCallback(CallbackServer):
    """Accepts each POST with 200 at once, then trickles the answer's body."""

    async def _handle(self, request: Request) -> Response:
        response = await super()._handle(request)
        if request.method != "POST":
            return response

        async def trickle() -> AsyncIterator[bytes]:
            yield b"accepted"
            await asyncio.sleep(2)
            yield b", and more"

        return StreamingResponse(trickle(), status_code=200)


async def test_webhook_accepted_with_a_slow_body_is_delivered_once(
    start_hub: StartHub,
) -> None:
    # The status decides a delivery; the body of the answer does not matter,
    # and waiting for it made an accepted event count as failed and sent again.
    hub = await start_hub(**{**WEBHOOK_SETTINGS, "webhook_timeout": 0.5})
    topic = new_topic()
    client = hub.client()
    watcher = await client.subscribe(topic, ["SyncError"], subscriber_name="watcher")
    async with (
        _TricklingCallback() as callback,
        client.connect(watcher) as errors,
    ):
        await stu2_subscribe(
            hub, topic=topic, events="patient-open", callback=callback.url()
        )
        assert await client.send(patient_open(topic)) == 202
        await hub.hub.webhooks.drain()

        assert len(callback.posts) == 1
        with pytest.raises(TimeoutError):
            await errors.next_event(timeout=0.5)


async def test_webhook_verification_answer_without_end_is_cut_short(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(**{**WEBHOOK_SETTINGS, "webhook_timeout": 10.0})
    topic = new_topic()

    def endless(challenge: str) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield challenge.encode()
            for _ in range(200):
                yield b"x" * 65536
                await asyncio.sleep(0.02)

        return StreamingResponse(chunks(), media_type="text/plain")

    async with CallbackServer(verify=endless) as callback:
        started = time.monotonic()
        await stu2_subscribe(
            hub, topic=topic, events="patient-open", callback=callback.url()
        )
        elapsed = time.monotonic() - started

    assert elapsed < 2, "the hub read the answer to its end"
    assert await hub.hub.store.list_webhook_subscriptions(topic) == []


async def test_reconnect_right_after_a_clean_close_is_accepted() -> None:
    # The client's close handshake ends before the hub has let go of the
    # endpoint; a subscriber reconnecting at once must not be told 409.
    with _ServedHub("--log-level", "warning") as served:
        endpoint = served.subscribe(new_topic())
        for _ in range(30):
            async with websockets.connect(endpoint) as socket:
                assert json.loads(await socket.recv())["hub.mode"] == "subscribe"


async def test_second_socket_on_an_open_endpoint_is_still_409(
    hub: RunningHub,
) -> None:
    endpoint = await hub.client().subscribe(new_topic(), ["Patient-open"])
    async with websockets.connect(endpoint) as first:
        await first.recv()
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(endpoint)
        assert refused.value.response.status_code == 409


async def test_event_during_two_overlapping_replays_is_not_lost(
    hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Re-subscribing while a replay runs starts a second replay; the events
    # the first one held back must still be sent when both are done.
    client = hub.client()
    topic = new_topic()
    events = ["Patient-open", "Patient-close"]
    endpoint = await client.subscribe(topic, events)
    store = hub.hub.store
    load_context = store.load_context
    gates: list[asyncio.Event] = []

    async def slow_load(topic: str) -> Any:
        state = await load_context(topic)
        if gates:
            await gates.pop().wait()
        return state

    monkeypatch.setattr(store, "load_context", slow_load)
    async with client.connect(endpoint) as connection:
        await client.send(patient_open(topic))
        assert (await connection.next_event())["event"]["hub.event"] == "Patient-open"

        gate = asyncio.Event()
        gates.append(gate)
        await client.subscribe(topic, events, endpoint=endpoint)
        await asyncio.sleep(0.1)  # the first replay has read the context
        close = notification(topic, "Patient-close", [patient()])
        assert await client.send(close) == 202
        await client.subscribe(topic, events, endpoint=endpoint)
        await asyncio.sleep(0.1)  # the second replay is done
        gate.set()

        seen = []
        with contextlib.suppress(TimeoutError):
            while True:
                frame = await connection.next_event(timeout=0.5)
                if "event" in frame:
                    seen.append(frame["event"]["hub.event"])
    assert seen[-1:] == ["Patient-close"], seen


async def test_unsubscribe_while_the_socket_connects_ends_it(
    hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])
    store = hub.hub.store
    claim_connection = store.claim_connection
    gate = asyncio.Event()

    async def slow_claim(*args: Any) -> bool:
        claimed = await claim_connection(*args)
        await gate.wait()
        return claimed

    monkeypatch.setattr(store, "claim_connection", slow_claim)
    connecting = asyncio.ensure_future(websockets.connect(endpoint))
    await asyncio.sleep(0.1)  # the hub has found the subscription
    await client.unsubscribe(topic, endpoint)
    gate.set()

    # Refused at the handshake, or accepted and then denied: never left open.
    try:
        socket = await connecting
    except websockets.InvalidStatus as refused:
        assert refused.value.response.status_code == 404
        return
    async with socket:
        frames = [json.loads(await asyncio.wait_for(socket.recv(), 2))]
        with contextlib.suppress(websockets.ConnectionClosed):
            while frames[-1].get("hub.mode") != "denied":
                frames.append(json.loads(await asyncio.wait_for(socket.recv(), 2)))
    assert frames[-1]["hub.mode"] == "denied"


async def test_odd_acknowledgements(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    watcher = await client.subscribe(topic, ["SyncError"], subscriber_name="watcher")
    endpoint = await client.subscribe(topic, ["Patient-open"], subscriber_name="odd")
    async with (
        client.connect(watcher) as errors,
        client.connect(endpoint, auto_ack=False) as connection,
    ):
        sent = patient_open(topic)
        # Before its event, and for ids never sent: ignored, nothing answered.
        await connection.ack(sent["id"])
        await connection.ack("never-sent")
        await client.send(sent)
        assert (await connection.next_event())["id"] == sent["id"]
        await connection.socket.send(json.dumps({"id": sent["id"], "status": {}}))
        await connection.ack(sent["id"])  # a repeat: ignored

        error = await errors.next_event()
        [issue] = error["event"]["context"][0]["resource"]["issue"]
        assert "odd" in issue["diagnostics"]
        assert "500" in issue["diagnostics"]
        with pytest.raises(TimeoutError):
            await connection.receive(timeout=0.3)


async def test_shared_content_cannot_grow_past_the_body_limit(
    start_hub: StartHub,
) -> None:
    # Each update is within max_body_bytes, but POSTed resources add up, in
    # memory and in every event's round trip of the state through Redis.
    hub = await start_hub(max_body_bytes=20_000)
    client = hub.client()
    topic = new_topic()
    assert await client.send(report_open(topic)) == 202

    def update(version_id: str, batch: int) -> dict[str, Any]:
        entries = [
            {
                "request": {"method": "POST"},
                "resource": {"resourceType": "Observation", "id": f"o{batch}-{n}"},
            }
            for n in range(150)
        ]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        body = notification(
            topic,
            "DiagnosticReport-update",
            [report(), {"key": "updates", "resource": bundle}],
        )
        body["event"]["context.versionId"] = version_id
        return body

    statuses = []
    for batch in range(8):
        version_id = (await client.current_context(topic))["context.versionId"]
        response = await post_event(hub.hub_url, update(version_id, batch))
        statuses.append(response.status_code)
        if response.status_code != 202:
            assert_outcome(response, 413)
            break
    assert statuses[0] == 202
    assert statuses[-1] == 413

    context = await client.current_context(topic)
    content = context["context"][-1]["resource"]
    # The refused update changed nothing.
    assert len(content["entry"]) == 150 * (len(statuses) - 1)
    await assert_still_serving(hub)
