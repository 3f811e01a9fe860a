"""A small async FHIRcast client, for apps, examples and tests.

Usage::

    async with HubClient("http://127.0.0.1:8000/fhircast/STU3") as hub:
        endpoint = await hub.subscribe("my-topic", ["Patient-open"])
        async with hub.connect(endpoint) as connection:
            event = await connection.next_event()

Events received through :meth:`Connection.next_event` are acknowledged with
status 200 unless ``auto_ack=False`` was given to :meth:`HubClient.connect`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import httpx2
import websockets
from websockets.asyncio.client import ClientConnection

from .syncerror import utc_timestamp


__all__ = ["Connection", "HubClient", "HubRequestError"]


class HubRequestError(Exception):
    """The hub refused a request; ``outcome`` is its OperationOutcome, if any."""

    def __init__(self, status_code: int, outcome: Any) -> None:
        self.status_code = status_code
        self.outcome = outcome
        super().__init__(f"hub answered {status_code}: {_diagnostics(outcome)}")


class HubClient:
    """Subscribe, publish and read context at one hub URL (``hub.url``)."""

    def __init__(
        self,
        hub_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.hub_url = hub_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx2.AsyncClient(headers=headers, timeout=timeout)

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def subscribe(
        self,
        topic: str,
        events: Iterable[str],
        *,
        lease_seconds: int | None = None,
        subscriber_name: str | None = None,
        endpoint: str | None = None,
    ) -> str:
        """Subscribe (or renew ``endpoint``); return the websocket endpoint URL."""
        form = {
            "hub.channel.type": "websocket",
            "hub.mode": "subscribe",
            "hub.topic": topic,
            "hub.events": ",".join(events),
        }
        if lease_seconds is not None:
            form["hub.lease_seconds"] = str(lease_seconds)
        if subscriber_name is not None:
            form["subscriber.name"] = subscriber_name
        if endpoint is not None:
            form["hub.channel.endpoint"] = endpoint
        response = await self._check(await self._http.post(self.hub_url, data=form))
        endpoint_url: str = response.json()["hub.channel.endpoint"]
        return endpoint_url

    async def unsubscribe(self, topic: str, endpoint: str) -> None:
        form = {
            "hub.channel.type": "websocket",
            "hub.mode": "unsubscribe",
            "hub.topic": topic,
            "hub.channel.endpoint": endpoint,
        }
        await self._check(await self._http.post(self.hub_url, data=form))

    async def publish(
        self,
        topic: str,
        event: str,
        context: list[dict[str, Any]],
        *,
        event_id: str | None = None,
        version_id: str | None = None,
    ) -> int:
        """Send an event; return the hub's status (202, or 206)."""
        body: dict[str, Any] = {
            "timestamp": utc_timestamp(),
            "id": event_id or str(uuid.uuid4()),
            "event": {"hub.topic": topic, "hub.event": event, "context": context},
        }
        if version_id is not None:
            body["event"]["context.versionId"] = version_id
        return await self.send(body)

    async def send(self, notification: dict[str, Any]) -> int:
        """Send a complete event notification as it is."""
        response = await self._http.post(self.hub_url, json=notification)
        return (await self._check(response)).status_code

    async def current_context(self, topic: str) -> dict[str, Any]:
        response = await self._check(await self._http.get(f"{self.hub_url}/{topic}"))
        context: dict[str, Any] = response.json()
        return context

    def connect(self, endpoint: str, *, auto_ack: bool = True) -> Connection:
        """Open the websocket of a subscription (use with ``async with``)."""
        return Connection(endpoint, auto_ack=auto_ack)

    async def _check(self, response: httpx2.Response) -> httpx2.Response:
        if response.status_code >= 400:
            try:
                outcome = response.json()
            except ValueError:
                outcome = response.text
            raise HubRequestError(response.status_code, outcome)
        return response


class Connection:
    """One subscription's websocket: confirmation, events, acknowledgements."""

    def __init__(self, endpoint: str, *, auto_ack: bool = True) -> None:
        self.endpoint = endpoint
        self.auto_ack = auto_ack
        self.confirmation: dict[str, Any] = {}
        self._socket: ClientConnection | None = None

    async def __aenter__(self) -> Connection:
        self._socket = await websockets.connect(self.endpoint)
        self.confirmation = await self.receive()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def socket(self) -> ClientConnection:
        if self._socket is None:
            raise RuntimeError("the connection is not open; use 'async with'")
        return self._socket

    async def receive(self, timeout: float | None = 10.0) -> dict[str, Any]:
        """The next frame, whatever it is (event, denial, confirmation)."""
        frame = await asyncio.wait_for(self.socket.recv(), timeout)
        message: dict[str, Any] = json.loads(frame)
        return message

    async def next_event(self, timeout: float | None = 10.0) -> dict[str, Any]:
        """The next event notification, acknowledged if ``auto_ack``.

        Raises :class:`HubRequestError` (403) when the hub denies the
        subscription instead.
        """
        message = await self.receive(timeout)
        if message.get("hub.mode") == "denied":
            raise HubRequestError(403, message)
        if self.auto_ack and "id" in message:
            await self.ack(message["id"])
        return message

    async def ack(self, event_id: str, status: int | str = 200) -> None:
        await self.socket.send(json.dumps({"id": event_id, "status": status}))

    async def close(self, code: int = 1000) -> None:
        if self._socket is not None:
            await self._socket.close(code)


def _diagnostics(outcome: Any) -> str:
    if isinstance(outcome, dict):
        issues = outcome.get("issue") or [{}]
        return str(issues[0].get("diagnostics", outcome))
    return str(outcome)
