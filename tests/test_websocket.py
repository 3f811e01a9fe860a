"""The websocket channel over real sockets: confirmation, refusals, leases,
unsubscribe, re-subscribe, reconnect, keep-alive and slow subscribers."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any
from urllib.parse import urlsplit

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from builders import (
    new_topic,
    notification,
    patient,
    patient_open,
    post_form,
    raw_connect,
    recv_json,
)
from conftest import RunningHub, StartHub


async def assert_refused(endpoint: str, status: int) -> dict[str, Any]:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(endpoint):
            pass
    response = refused.value.response
    assert response.status_code == status
    outcome: dict[str, Any] = json.loads(response.body or b"{}")
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome


async def test_websocket_sends_a_confirmation_frame_first(hub: RunningHub) -> None:
    topic = new_topic()
    endpoint = await hub.client().subscribe(
        topic, ["Patient-open", "Patient-close"], lease_seconds=300
    )

    async with await raw_connect(endpoint) as socket:
        confirmation = await recv_json(socket)

    assert confirmation["hub.mode"] == "subscribe"
    assert confirmation["hub.topic"] == topic
    assert confirmation["hub.events"] == "Patient-open,Patient-close"
    assert isinstance(confirmation["hub.lease_seconds"], int)
    assert 298 <= confirmation["hub.lease_seconds"] <= 300


async def test_websocket_refuses_an_unknown_endpoint_with_404(
    hub: RunningHub,
) -> None:
    url = f"ws://127.0.0.1:{hub.server.config.port}/ws/never-handed-out"

    await assert_refused(url, 404)


async def test_websocket_refuses_a_second_concurrent_socket_with_409(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])

    async with client.connect(endpoint) as first:
        await assert_refused(endpoint, 409)
        # The first socket is unharmed.
        await client.send(patient_open(topic))
        assert (await first.next_event())["event"]["hub.event"] == "Patient-open"


async def test_websocket_lease_expiry_denies_and_closes(start_hub: StartHub) -> None:
    hub = await start_hub(lease_default=1)
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])

    async with client.connect(endpoint) as connection:
        assert connection.confirmation["hub.lease_seconds"] == 1
        denial = await connection.receive(timeout=5)
        assert denial["hub.mode"] == "denied"
        assert denial["hub.topic"] == topic
        assert denial["hub.events"] == "Patient-open"
        assert denial.get("hub.reason")
        with pytest.raises(ConnectionClosed):
            await connection.receive(timeout=5)

    await assert_refused(endpoint, 404)


async def test_websocket_unsubscribe_denies_closes_1000_and_kills_the_endpoint(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])
    form = {
        "hub.channel.type": "websocket",
        "hub.mode": "unsubscribe",
        "hub.topic": topic,
        "hub.channel.endpoint": endpoint,
    }

    async with client.connect(endpoint) as connection:
        response = await post_form(hub.hub_url, form)
        assert response.status_code == 202
        assert response.json() == {"hub.channel.endpoint": endpoint}

        denial = await connection.receive()
        assert denial["hub.mode"] == "denied"
        assert denial["hub.topic"] == topic
        with pytest.raises(ConnectionClosed) as closed:
            await connection.receive()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1000

    await assert_refused(endpoint, 404)
    again = await post_form(hub.hub_url, form)
    assert again.status_code == 404
    renew = await post_form(
        hub.hub_url,
        {
            **form,
            "hub.mode": "subscribe",
            "hub.events": "Patient-open",
        },
    )
    assert renew.status_code == 404


async def test_websocket_unsubscribe_of_an_unconnected_subscription(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])

    await client.unsubscribe(topic, endpoint)

    await assert_refused(endpoint, 404)


async def test_websocket_resubscribe_replaces_events_and_confirms_again(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"], subscriber_name="v")

    async with client.connect(endpoint) as connection:
        renewed = await client.subscribe(
            topic, ["Patient-close"], endpoint=endpoint, lease_seconds=200
        )
        assert renewed == endpoint
        confirmation = await connection.receive()
        assert confirmation["hub.mode"] == "subscribe"
        assert confirmation["hub.events"] == "Patient-close"
        assert 198 <= confirmation["hub.lease_seconds"] <= 200

        await client.send(patient_open(topic))
        close = notification(topic, "Patient-close", [patient()])
        await client.send(close)
        event = await connection.next_event()
        assert event["id"] == close["id"]
        with pytest.raises(TimeoutError):
            await connection.receive(timeout=0.3)


async def test_websocket_resubscribe_renews_the_lease(start_hub: StartHub) -> None:
    hub = await start_hub(lease_default=1)
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])

    async with client.connect(endpoint) as connection:
        await client.subscribe(
            topic, ["Patient-open"], endpoint=endpoint, lease_seconds=30
        )
        assert (await connection.receive())["hub.lease_seconds"] >= 29
        # Past the first lease, the socket still receives events.
        await asyncio.sleep(1.5)
        await client.send(patient_open(topic))
        event = await connection.next_event()
        assert event["event"]["hub.event"] == "Patient-open"


async def test_websocket_dropped_socket_reconnects_within_its_lease(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])
    opened = patient_open(topic)

    async with client.connect(endpoint):
        await client.send(opened)
    # Closed with 1000 by the client; the subscription lives on.

    async with client.connect(endpoint) as again:
        assert again.confirmation["hub.mode"] == "subscribe"
        replayed = await again.next_event()
        assert replayed["id"] == opened["id"]
        assert replayed["timestamp"] == opened["timestamp"]


async def test_websocket_client_answering_pings_stays_connected(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(keepalive_interval=0.1)
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])

    async with client.connect(endpoint) as connection:
        await asyncio.sleep(0.6)
        await client.send(patient_open(topic))
        assert (await connection.next_event())["event"]["hub.event"] == "Patient-open"


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked server frame: (opcode, payload)."""
    head = await reader.readexactly(2)
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", await reader.readexactly(8))[0]
    return head[0] & 0x0F, await reader.readexactly(length)


async def test_websocket_keepalive_pings_and_drops_a_silent_peer(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(keepalive_interval=0.2)
    endpoint = await hub.client().subscribe(new_topic(), ["Patient-open"])
    url = urlsplit(endpoint)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(_handshake(url.path, url.netloc))
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101")

        opcodes = []
        async with asyncio.timeout(5):
            while True:
                try:
                    opcode, _ = await _read_frame(reader)
                except asyncio.IncompleteReadError:
                    break
                opcodes.append(opcode)
                if opcode == 0x8:
                    break
        # Text (confirmation), then a ping; no pong is sent, so the hub closes.
        assert opcodes[0] == 0x1
        assert 0x9 in opcodes
    finally:
        writer.close()


async def stalled_websocket(endpoint: str) -> socket.socket:
    """A websocket whose client never reads past the handshake."""
    url = urlsplit(endpoint)
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, (url.hostname, url.port))
    await loop.sock_sendall(sock, _handshake(url.path, url.netloc))
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += await asyncio.wait_for(loop.sock_recv(sock, 1), 5)
    assert answer.startswith(b"HTTP/1.1 101")
    return sock


async def close_code_after(sock: socket.socket, timeout: float) -> int:
    """Read frames from a raw socket up to the close frame; its code."""
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        async with asyncio.timeout(timeout):
            while True:
                opcode, payload = await _read_frame(reader)
                if opcode == 0x8:
                    code: int = struct.unpack("!H", payload[:2])[0]
                    return code
    finally:
        writer.close()


def _handshake(path: str, host: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def test_websocket_slow_subscriber_is_closed_and_others_keep_receiving(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(send_queue_size=4, ack_timeout=30)
    client = hub.client()
    topic = new_topic()
    slow_endpoint = await client.subscribe(
        topic, ["Patient-open"], subscriber_name="slow"
    )
    fast_endpoint = await client.subscribe(
        topic, ["Patient-open"], subscriber_name="fast"
    )
    watcher_endpoint = await client.subscribe(
        topic, ["SyncError"], subscriber_name="watcher"
    )
    # A large resource fills the socket buffers quickly.
    padding = "x" * 60_000

    # The slow subscriber reads its handshake answer, then nothing more.
    slow = await stalled_websocket(slow_endpoint)
    try:
        async with (
            client.connect(fast_endpoint) as fast,
            client.connect(watcher_endpoint) as watcher,
        ):
            received = 0
            sync_error = None
            for index in range(200):
                context = [patient(f"p{index}")]
                context[0]["resource"]["text"] = padding
                await client.send(notification(topic, "Patient-open", context))
                await fast.next_event()
                received += 1
                channel = hub.hub.channels.get(slow_endpoint.rsplit("/", 1)[1])
                if channel is None or not channel.wants("patient-open"):
                    break
            else:
                pytest.fail("the slow subscriber was never closed")
            sync_error = await watcher.next_event()
            # Reading what was held back ends with the hub's close frame.
            assert await close_code_after(slow, timeout=5) == 1013
            # The fast subscriber still gets everything after.
            after = patient_open(topic, "after")
            await client.send(after)
            assert (await fast.next_event())["id"] == after["id"]
    finally:
        slow.close()

    outcome = sync_error["event"]["context"][0]["resource"]
    assert sync_error["event"]["hub.event"] == "SyncError"
    codes = {
        coding["system"].rsplit("/", 1)[1]: coding["code"]
        for coding in outcome["issue"][0]["details"]["coding"]
    }
    assert codes["subscribername"] == "slow"
    assert received > 4
