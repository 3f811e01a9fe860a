"""Real webhook callback servers on loopback, and STU2 helpers for tests.

A :class:`CallbackServer` is a small Starlette app under uvicorn in the test's
event loop. It records every request and answers as the test configures:
verification GETs echo the challenge unless told otherwise, POSTs get the
statuses queued in ``post_statuses`` (then ``post_status``), and with
``hold_posts`` every POST waits until ``release`` is set.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from conftest import RunningHub, free_port


__all__ = [
    "WEBHOOK_SETTINGS",
    "CallbackServer",
    "Received",
    "signed_with",
    "stu2_subscribe",
    "stu2_url",
]

# Tests call back to loopback over plain http; short backoff keeps retries quick.
WEBHOOK_SETTINGS: dict[str, Any] = {
    "webhook_allow_http": True,
    "webhook_allow_private": True,
    "webhook_backoff": 0.05,
    "webhook_retries": 2,
}

WAIT = 10.0


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def params(self) -> dict[str, str]:
        return {name: values[-1] for name, values in parse_qs(self.query).items()}

    @property
    def mode(self) -> str | None:
        return self.params.get("hub.mode")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class CallbackServer:
    """A webhook subscriber's HTTP server."""

    verify: Callable[[str], Response] = field(
        default=lambda challenge: PlainTextResponse(challenge)
    )
    post_status: int = 200
    post_statuses: list[int] = field(default_factory=list)
    hold_posts: bool = False
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.release = asyncio.Event()
        self._changed = asyncio.Condition()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def url(self, path: str = "/callback") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def posts(self) -> list[Received]:
        return [request for request in self.received if request.method == "POST"]

    def gets(self, mode: str) -> list[Received]:
        return [r for r in self.received if r.method == "GET" and r.mode == mode]

    async def wait_for(
        self, check: Callable[[CallbackServer], bool], timeout: float = WAIT
    ) -> None:
        """Wait (bounded) until ``check`` holds for what was received."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: check(self))

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        received = Received(
            request.method,
            request.url.path,
            request.url.query,
            {name.lower(): value for name, value in request.headers.items()},
            body,
        )
        self.received.append(received)
        async with self._changed:
            self._changed.notify_all()

        if request.method == "GET":
            if received.mode == "subscribe":
                return self.verify(received.params.get("hub.challenge", ""))
            return Response(status_code=200)
        if self.hold_posts:
            await self.release.wait()
        status = self.post_statuses.pop(0) if self.post_statuses else self.post_status
        return Response(status_code=status)

    async def __aenter__(self) -> CallbackServer:
        app = Starlette(
            routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release.set()
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await asyncio.wait_for(self._task, WAIT)


def stu2_url(hub: RunningHub) -> str:
    return f"{hub.base_url}/fhircast/STU2"


async def stu2_subscribe(
    hub: RunningHub,
    *,
    topic: str,
    events: str,
    callback: str,
    secret: str | None = "a secret of the subscriber",
    lease_seconds: int | None = None,
    mode: str = "subscribe",
    verified: bool = True,
) -> httpx2.Response:
    """Send an STU2 webhook (un)subscribe; with ``verified``, wait until the
    hub has finished verifying intent."""
    form = {
        "hub.channel.type": "webhook",
        "hub.mode": mode,
        "hub.topic": topic,
        "hub.callback": callback,
    }
    if mode == "subscribe":
        form["hub.events"] = events
    if secret is not None:
        form["hub.secret"] = secret
    if lease_seconds is not None:
        form["hub.lease_seconds"] = str(lease_seconds)
    async with httpx2.AsyncClient() as http:
        response = await http.post(stu2_url(hub), data=form)
    if verified:
        await hub.hub.webhooks.drain()
    return response


def signed_with(secret: str, received: Received) -> bool:
    """Whether a POST carries the HMAC-SHA256 of its raw body under ``secret``."""
    expected = hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(
        received.headers.get("x-hub-signature", ""), f"sha256={expected}"
    )
