"""Several hub processes sharing one Redis: real subprocesses, real redis-server.

Each test starts three ``fhircast-hub serve`` processes on three ports against
its own redis-server, so a test may stop Redis or kill a hub.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import websockets

from conftest import StartHub, free_port, spec_example
from fhircast_hub.client import Connection, HubClient, HubRequestError
from redis_server import REDIS_SERVER, RedisServer


SRC = Path(__file__).resolve().parents[1] / "src"
# Short enough that the claims of a killed process lapse quickly in a test.
CLAIM_TTL = 1.5
WAIT = 30.0


@dataclass
class HubProcess:
    port: int
    log: Path
    process: subprocess.Popen[bytes]
    clients: list[HubClient] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> HubClient:
        client = HubClient(f"{self.base_url}/fhircast/STU3")
        self.clients.append(client)
        return client

    def endpoint_here(self, endpoint: str) -> str:
        """The same websocket endpoint, reached through this process."""
        endpoint_id = endpoint.rsplit("/", 1)[-1]
        return f"ws://127.0.0.1:{self.port}/ws/{endpoint_id}"

    async def ready(self) -> int:
        async with httpx2.AsyncClient(timeout=5) as http:
            return (await http.get(f"{self.base_url}/readyz")).status_code


async def wait_until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds; fail after a generous bound."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"gave up waiting until {what}")
        await asyncio.sleep(0.1)


async def all_ready(hubs: list[HubProcess], status: int = 200) -> bool:
    for hub in hubs:
        try:
            if await hub.ready() != status:
                return False
        except httpx2.TransportError:
            return False
    return True


@pytest.fixture
def redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


@pytest.fixture
async def hubs(redis: RedisServer, tmp_path: Path) -> AsyncIterator[list[HubProcess]]:
    """Three hub processes sharing ``redis``, ready to serve."""
    started = []
    for number in range(3):
        port = free_port()
        log = tmp_path / f"hub-{number}.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fhircast_hub",
                    "serve",
                    "--port",
                    str(port),
                    "--redis-url",
                    redis.url,
                    "--connection-claim-ttl",
                    str(CLAIM_TTL),
                    "--log-level",
                    "warning",
                ],
                env={**os.environ, "PYTHONPATH": str(SRC)},
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        started.append(HubProcess(port, log, process))

    async def up() -> bool:
        return await all_ready(started)

    try:
        await wait_until(up, "three hub processes are ready")
        yield started
    finally:
        for hub in started:
            for client in hub.clients:
                await client.aclose()
            if hub.process.poll() is None:
                hub.process.send_signal(signal.SIGTERM)
        for hub in started:
            try:
                hub.process.wait(10)
            except subprocess.TimeoutExpired:
                hub.process.kill()
                hub.process.wait()


def patient_open(topic: str, patient: str | None = None) -> dict[str, Any]:
    event = copy.deepcopy(spec_example("stu3-3-3-1-Patient-open-1.json"))
    event["id"] = str(uuid.uuid4())
    event["event"]["hub.topic"] = topic
    event["event"]["context"][0]["resource"]["id"] = patient or str(uuid.uuid4())
    return event


def new_topic() -> str:
    return str(uuid.uuid4())


def assert_healthy(hub: HubProcess) -> None:
    """The process runs and logged no error or traceback."""
    assert hub.process.poll() is None, f"hub on port {hub.port} exited"
    log = hub.log.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log


async def test_event_posted_to_one_process_reaches_a_socket_on_another_once(
    hubs: list[HubProcess],
) -> None:
    first, second, third = hubs
    topic = new_topic()
    endpoint = await first.client().subscribe(topic, ["Patient-open"])

    async with Connection(second.endpoint_here(endpoint)) as connection:
        event, marker = patient_open(topic), patient_open(topic)
        assert await third.client().send(event) == 202
        assert await third.client().send(marker) == 202

        # The marker comes right after the event: no copy of it in between.
        assert (await connection.next_event())["id"] == event["id"]
        assert (await connection.next_event())["id"] == marker["id"]


async def test_events_from_two_processes_reach_every_subscriber_in_one_order(
    hubs: list[HubProcess],
) -> None:
    topic = new_topic()
    per_publisher = 100
    connections = []
    for hub in hubs:
        endpoint = await hub.client().subscribe(topic, ["Patient-open"])
        connections.append(Connection(endpoint))
    for connection in connections:
        await connection.__aenter__()

    async def publish(hub: HubProcess, name: str) -> list[str]:
        client = hub.client()
        sent = []
        for number in range(per_publisher):
            event = patient_open(topic, f"{name}-{number}")
            assert await client.send(event) == 202
            sent.append(event["id"])
        return sent

    async def receive(connection: Connection) -> list[str]:
        return [(await connection.next_event())["id"] for _ in range(2 * per_publisher)]

    try:
        sent_a, sent_b, *received = await asyncio.gather(
            publish(hubs[0], "a"),
            publish(hubs[1], "b"),
            *(receive(connection) for connection in connections),
        )
    finally:
        for connection in connections:
            await connection.close()

    assert received[0] == received[1] == received[2]
    assert [i for i in received[0] if i in set(sent_a)] == sent_a
    assert [i for i in received[0] if i in set(sent_b)] == sent_b


async def test_concurrent_updates_with_one_version_on_two_processes_one_wins(
    hubs: list[HubProcess],
) -> None:
    topic = new_topic()
    opened = copy.deepcopy(spec_example("stu3-3-6-1-DiagnosticReport-open-1.json"))
    opened["event"]["hub.topic"] = topic
    assert await hubs[0].client().send(opened) == 202
    first, second = hubs[1].client(), hubs[2].client()

    for _ in range(5):
        version = (await first.current_context(topic))["context.versionId"]
        updates = []
        for _ in range(2):
            update = copy.deepcopy(
                spec_example("stu3-3-6-3-DiagnosticReport-update-1.json")
            )
            update["id"] = str(uuid.uuid4())
            update["event"]["hub.topic"] = topic
            update["event"]["context.versionId"] = version
            updates.append(update)

        outcomes = await asyncio.gather(
            first.send(updates[0]), second.send(updates[1]), return_exceptions=True
        )

        assert sorted(o for o in outcomes if isinstance(o, int)) == [202]
        refused = [o for o in outcomes if isinstance(o, HubRequestError)]
        assert [error.status_code for error in refused] == [400]
        assert refused[0].outcome["resourceType"] == "OperationOutcome"
        assert (await first.current_context(topic))["context.versionId"] != version


async def test_hubs_answer_503_while_redis_is_down_and_recover(
    hubs: list[HubProcess], redis: RedisServer
) -> None:
    topic = new_topic()
    connections = [
        Connection(await hub.client().subscribe(topic, ["Patient-open"]))
        for hub in hubs[:2]
    ]
    for connection in connections:
        await connection.__aenter__()
    publisher = hubs[2].client()
    before = patient_open(topic)
    assert await publisher.send(before) == 202
    for connection in connections:
        assert (await connection.next_event())["id"] == before["id"]

    redis.stop(save=True)

    async def none_ready() -> bool:
        return await all_ready(hubs, status=503)

    await wait_until(none_ready, "every hub reports not ready")
    with pytest.raises(HubRequestError) as refused_event:
        await publisher.send(patient_open(topic))
    with pytest.raises(HubRequestError) as refused_subscribe:
        await hubs[0].client().subscribe(topic, ["Patient-open"])
    for refused in (refused_event.value, refused_subscribe.value):
        assert refused.status_code == 503
        assert refused.outcome["resourceType"] == "OperationOutcome"
        assert "Redis is unavailable" in refused.outcome["issue"][0]["diagnostics"]

    redis.start()

    async def every_ready() -> bool:
        return await all_ready(hubs)

    await wait_until(every_ready, "every hub is ready again")
    after = patient_open(topic)
    assert await publisher.send(after) == 202
    # The sockets opened before the outage carry the event sent after it.
    for connection in connections:
        assert (await connection.next_event())["id"] == after["id"]
        await connection.close()
    for hub in hubs:
        assert_healthy(hub)


async def test_subscriber_of_a_killed_process_reconnects_through_another(
    hubs: list[HubProcess],
) -> None:
    first, second, third = hubs
    topic = new_topic()
    endpoint = await first.client().subscribe(topic, ["Patient-open"])
    opened = patient_open(topic)

    async with Connection(second.endpoint_here(endpoint)) as connection:
        assert await first.client().send(opened) == 202
        assert (await connection.next_event())["id"] == opened["id"]

        second.process.kill()
        second.process.wait(10)
        with pytest.raises(websockets.ConnectionClosed):
            await connection.receive()

    # Refused (409) while the dead process's claim lives, then accepted.
    elsewhere = Connection(third.endpoint_here(endpoint))
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        try:
            await elsewhere.__aenter__()
            break
        except websockets.InvalidStatus as refused:
            assert refused.response.status_code == 409
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.2)

    try:
        assert elsewhere.confirmation["hub.mode"] == "subscribe"
        replayed = await elsewhere.next_event()
        assert replayed["id"] == opened["id"]
        assert replayed["event"]["context"] == opened["event"]["context"]

        later = patient_open(topic)
        assert await first.client().send(later) == 202
        assert (await elsewhere.next_event())["id"] == later["id"]
    finally:
        await elsewhere.close()
    assert_healthy(first)
    assert_healthy(third)


@pytest.fixture
def sentinel(redis: RedisServer, tmp_path: Path) -> AsyncIterator[int]:
    """A Sentinel (redis-server --sentinel) watching ``redis`` as "mymaster"."""
    port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {redis.port} 1\n"
    )
    process = subprocess.Popen(
        [REDIS_SERVER, str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port  # type: ignore[misc]
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("backend_settings", [pytest.param({}, id="sentinel")])
async def test_hub_finds_its_redis_through_sentinel(
    sentinel: int, redis: RedisServer, start_hub: StartHub
) -> None:
    url = f"redis+sentinel://127.0.0.1:{sentinel}/mymaster"
    hubs = [await start_hub(redis_url=url), await start_hub(redis_url=url)]
    topic = new_topic()

    endpoint = ""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not endpoint:
        try:
            endpoint = await hubs[0].client().subscribe(topic, ["Patient-open"])
        except HubRequestError as refused:  # the sentinel is still starting
            assert refused.status_code == 503
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)

    second = hubs[1].base_url.replace("http://", "ws://")
    async with Connection(f"{second}/ws/{endpoint.rsplit('/', 1)[-1]}") as connection:
        event = patient_open(topic)
        assert await hubs[0].client().send(event) == 202
        assert (await connection.next_event())["id"] == event["id"]
    with redis.client() as direct:
        assert direct.keys("fhircast:topic:*")


async def test_process_shutting_down_releases_its_sockets_claims(
    hubs: list[HubProcess],
) -> None:
    first, second, third = hubs
    topic = new_topic()
    endpoint = await first.client().subscribe(topic, ["Patient-open"])

    async with Connection(second.endpoint_here(endpoint)) as connection:
        second.process.send_signal(signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await connection.receive()
    assert closed.value.rcvd is not None and closed.value.rcvd.code in (1001, 1012)
    # uvicorn exits by re-raising the signal once it has shut down cleanly.
    assert second.process.wait(10) in (0, -signal.SIGTERM)
    log = second.log.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log

    # No wait for the claim to lapse: the first reconnect is accepted.
    async with Connection(third.endpoint_here(endpoint)) as elsewhere:
        assert elsewhere.confirmation["hub.mode"] == "subscribe"
    assert_healthy(first)
    assert_healthy(third)
