"""Fixtures: a real hub under uvicorn on a free loopback port, and clients."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from auth_support import RunningAuthServer, start_auth_server
from fhircast_hub import Settings, create_app
from fhircast_hub.client import HubClient
from fhircast_hub.hub import Hub
from redis_server import RedisServer


# The FHIRcast specification's example messages are test inputs read from
# beside the repository, never copied into it.
SPEC_EXAMPLES = Path(
    os.environ.get(
        "FHIRCAST_SPEC_EXAMPLES",
        Path(__file__).resolve().parents[1].parent / "shared" / "spec-examples",
    )
)


def pytest_configure(config: pytest.Config) -> None:
    if not (SPEC_EXAMPLES / "stu3-3-3-1-Patient-open-1.json").is_file():
        raise pytest.UsageError(
            f"the FHIRcast specification's example messages are expected in "
            f"{SPEC_EXAMPLES}: put them there (the JSON examples of "
            "HL7/fhircast-docs) or set FHIRCAST_SPEC_EXAMPLES to their folder"
        )


def spec_example(name: str) -> dict[str, Any]:
    """One of the specification's example messages, as the spec gives it."""
    example: dict[str, Any] = json.loads((SPEC_EXAMPLES / name).read_text())
    return example


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RunningHub:
    """A hub serving on loopback, and what tests need to talk to it."""

    base_url: str
    server: uvicorn.Server
    app: Any
    clients: list[HubClient] = field(default_factory=list)

    @property
    def hub_url(self) -> str:
        return f"{self.base_url}/fhircast/STU3"

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.state.hub
        return hub

    def client(self, token: str | None = None) -> HubClient:
        client = HubClient(self.hub_url, token=token)
        self.clients.append(client)
        return client


StartHub = Callable[..., Awaitable[RunningHub]]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session, on a free loopback port."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def backend_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings that choose the backend: every hub test runs on both.

    The Redis backend gets the session's redis-server, emptied for each test.
    """
    if request.param == "memory":
        return {}
    server: RedisServer = request.getfixturevalue("redis_server")
    with server.client() as client:
        client.flushall()
    return {"redis_url": server.url}


@pytest.fixture
async def start_hub(backend_settings: dict[str, Any]) -> AsyncIterator[StartHub]:
    """Start hubs with the given settings; all are stopped after the test."""
    running: list[RunningHub] = []

    async def start(**overrides: Any) -> RunningHub:
        port = free_port()
        settings = Settings(
            host="127.0.0.1", port=port, **{**backend_settings, **overrides}
        )
        app = create_app(settings)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            ws="websockets-sansio",
            ws_max_size=settings.max_frame_bytes,
            ws_ping_interval=settings.keepalive_interval,
            ws_ping_timeout=settings.keepalive_interval,
            log_level="warning",
            lifespan="on",
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the hub stopped before it started")
            await asyncio.sleep(0.01)
        hub = RunningHub(f"http://127.0.0.1:{port}", server, app)
        hub.server_task = task  # type: ignore[attr-defined]
        running.append(hub)
        return hub

    yield start

    for hub in running:
        for client in hub.clients:
            await client.aclose()
        hub.server.should_exit = True
        await asyncio.wait_for(hub.server_task, 10)  # type: ignore[attr-defined]


@pytest.fixture
async def hub(start_hub: StartHub) -> RunningHub:
    """A hub with default settings."""
    return await start_hub()


@pytest.fixture
async def auth_server() -> AsyncIterator[RunningAuthServer]:
    """The development authorization server, on its own loopback port."""
    running = await start_auth_server(free_port(), "http://127.0.0.1/fhircast/STU3")
    yield running
    if not running.task.done():
        await running.stop()
