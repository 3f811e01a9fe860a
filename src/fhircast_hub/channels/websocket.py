"""Delivery to one websocket subscriber.

Each socket has its own bounded queue and sender task, so that a slow or dead
subscriber never delays the others: :meth:`WebSocketChannel.offer` never
blocks, and a subscriber whose queue overflows is closed (1013) and reported
with a SyncError. Every event sent waits for an acknowledgement
``{"id", "status"}``; an error status, or none within the ack timeout, is
reported to the hub. The lease is a timer: at expiry the subscriber gets a
denial frame and the socket closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .. import jsontext
from ..errors import operation_outcome
from ..subscriptions import Subscription


__all__ = ["ChannelListener", "WebSocketChannel"]

logger = logging.getLogger("fhircast_hub.channels.websocket")

# Close codes after which a subscriber left on purpose: no SyncError. 1005
# means "closed without a code", which browsers and Node send for a plain
# close().
NORMAL_CLOSE_CODES = frozenset({1000, 1001, 1005})
CLOSE_SLOW_CONSUMER = 1013
CLOSE_TIMEOUT = 5.0


class ChannelListener(Protocol):
    """What a channel reports to the hub."""

    def delivery_failed(
        self, channel: WebSocketChannel, event_id: str, event_name: str, reason: str
    ) -> None: ...

    def subscriber_silent(
        self, channel: WebSocketChannel, event_id: str, event_name: str
    ) -> None: ...

    def lease_expired(self, channel: WebSocketChannel) -> None: ...


@dataclass(frozen=True)
class _Frame:
    text: str
    event_id: str | None = None
    event_name: str | None = None


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


class WebSocketChannel:
    """One subscriber's websocket: queue, sender, acknowledgements, lease."""

    def __init__(
        self,
        websocket: WebSocket,
        subscription: Subscription,
        listener: ChannelListener,
        *,
        ack_timeout: float,
        queue_size: int,
        claim: str = "",
    ) -> None:
        self.websocket = websocket
        self.claim = claim
        self.subscription = subscription
        self.close_code: int | None = None
        self.closed_by_hub = False
        self.last_event: tuple[str, str] | None = None
        self._listener = listener
        self._ack_timeout = ack_timeout
        self._queue: asyncio.Queue[_Frame | _Close] = asyncio.Queue(queue_size)
        self._acks: dict[str, tuple[str, asyncio.TimerHandle]] = {}
        self._lease_timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._held: list[_Frame] | None = None
        self._holds = 0
        self._replayed: set[str] = set()
        self._aborted = asyncio.Event()
        self._abort_reason = ""
        self._log = logging.LoggerAdapter(
            logger, {"endpoint": subscription.endpoint[:8], "topic": subscription.topic}
        )

    @property
    def endpoint(self) -> str:
        return self.subscription.endpoint

    @property
    def topic(self) -> str:
        return self.subscription.topic

    def wants(self, event_key: str) -> bool:
        return not self._closing and self.subscription.wants(event_key)

    # Sending: all frames go through the queue, so they keep their order.

    def hold(self) -> None:
        """Keep live events aside while the current context is replayed.

        Holds nest: a re-subscribe during a replay starts another, and the
        events held for the first must wait for both, not be dropped.
        """
        self._holds += 1
        if self._held is None:
            self._held = []

    def release(self, replayed: set[str]) -> None:
        """Queue the events held back, except those a replay already sent,
        once the last replay is done."""
        self._replayed |= replayed
        self._holds -= 1
        if self._holds > 0:
            return
        held, self._held = self._held or [], None
        sent, self._replayed = self._replayed, set()
        for frame in held:
            if frame.event_id not in sent:
                self.offer(frame.text, frame.event_id, frame.event_name)

    def offer(
        self, text: str, event_id: str | None = None, name: str | None = None
    ) -> None:
        """Queue a frame without waiting; overflow closes the subscriber."""
        if self._closing:
            return
        if self._held is not None and event_id is not None:
            self._held.append(_Frame(text, event_id, name))
            return
        try:
            self._queue.put_nowait(_Frame(text, event_id, name))
        except asyncio.QueueFull:
            self._log.warning(
                "closing %s: %d events waiting, the subscriber does not keep up",
                self.subscription.display_name,
                self._queue.qsize(),
            )
            if event_id is not None and name is not None:
                self._listener.delivery_failed(
                    self, event_id, name, "the subscriber does not keep up with events"
                )
            self.abort(CLOSE_SLOW_CONSUMER, "send queue overflow")

    def send_json(self, message: dict[str, Any]) -> None:
        self.offer(json.dumps(message, separators=(",", ":")))

    def send_event(self, event: dict[str, Any]) -> None:
        """Queue one notification; it waits for an acknowledgement once sent."""
        text = json.dumps(event, separators=(",", ":"))
        self.offer(text, event["id"], event["event"]["hub.event"])

    def confirm(self, subscription: Subscription) -> None:
        """Adopt a (renewed) subscription, send its confirmation, reset the lease."""
        self.subscription = subscription
        self.send_json(
            {
                "hub.mode": "subscribe",
                "hub.topic": subscription.topic,
                "hub.events": ",".join(subscription.events),
                "hub.lease_seconds": subscription.lease_seconds(time.time()),
            }
        )
        self._schedule_lease()

    def deny(self, reason: str, code: int = 1000) -> None:
        """Send a denial frame, then close the socket after it."""
        if self._closing:
            return
        self.send_json(
            {
                "hub.mode": "denied",
                "hub.topic": self.subscription.topic,
                "hub.events": ",".join(self.subscription.events),
                "hub.reason": reason,
            }
        )
        self._closing = True
        self.closed_by_hub = True
        try:
            self._queue.put_nowait(_Close(code, reason))
        except asyncio.QueueFull:
            self.abort(code, reason)
            return
        # A subscriber that does not read may keep the denial from being sent.
        asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.abort, code, reason)

    def abort(self, code: int, reason: str) -> None:
        """Close now, dropping whatever is queued."""
        self._closing = True
        self.closed_by_hub = True
        self.close_code = code
        self._abort_reason = reason
        self._aborted.set()

    def replayed_while_holding(self, event: dict[str, Any]) -> None:
        """Queue a replayed event ahead of the live events held back."""
        text = json.dumps(event, separators=(",", ":"))
        held, self._held = self._held, None
        self.offer(text, event["id"], event["event"]["hub.event"])
        self._held = held

    # Running: one sender and one receiver until either side ends.

    async def run(self) -> None:
        """Serve the socket until it closes, from either side.

        Frames over ``max_frame_bytes`` never arrive here: the server refuses
        them and closes with 1009 (``fhircast-hub serve`` sets its limit).
        """
        sender = asyncio.create_task(self._send_loop())
        receiver = asyncio.create_task(self._receive_loop())
        aborted = asyncio.create_task(self._aborted.wait())
        try:
            await asyncio.wait(
                {sender, receiver, aborted}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (sender, receiver, aborted):
                task.cancel()
            await asyncio.gather(sender, receiver, aborted, return_exceptions=True)
            self._log_failure(sender, receiver)
            if self._aborted.is_set():
                await self._close(self.close_code or 1011, self._abort_reason)
            self._stop_timers()

    def _log_failure(self, *tasks: asyncio.Task[None]) -> None:
        """Log what ended a loop unexpectedly, rather than lose it silently."""
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                error = task.exception()
                if error is not None and not isinstance(
                    error, WebSocketDisconnect | OSError
                ):
                    self._log.error(
                        "the websocket of %s failed",
                        self.subscription.display_name,
                        exc_info=error,
                    )

    async def _send_loop(self) -> None:
        while True:
            frame = await self._queue.get()
            if isinstance(frame, _Close):
                await self._close(frame.code, frame.reason)
                return
            await self.websocket.send_text(frame.text)
            if frame.event_id is not None and frame.event_name is not None:
                self._expect_ack(frame.event_id, frame.event_name)

    async def _receive_loop(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self.close_code = _disconnect_code(message)
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            self._on_frame(text)

    async def _close(self, code: int, reason: str) -> None:
        self.close_code = code
        if self.websocket.application_state is WebSocketState.DISCONNECTED:
            return
        try:
            await asyncio.wait_for(self.websocket.close(code, reason), CLOSE_TIMEOUT)
        except (TimeoutError, RuntimeError, WebSocketDisconnect, OSError):
            pass

    # Acknowledgements.

    def _expect_ack(self, event_id: str, event_name: str) -> None:
        self.last_event = (event_id, event_name)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self._ack_timeout, self._ack_missing, event_id)
        previous = self._acks.pop(event_id, None)
        if previous is not None:
            previous[1].cancel()
        self._acks[event_id] = (event_name, timer)

    def _ack_missing(self, event_id: str) -> None:
        pending = self._acks.pop(event_id, None)
        if pending is None or self._closing:
            return
        self._log.warning(
            "%s sent no acknowledgement for event %s (%s)",
            self.subscription.display_name,
            event_id,
            pending[0],
        )
        self._listener.subscriber_silent(self, event_id, pending[0])

    def _on_frame(self, text: str) -> None:
        try:
            message = jsontext.parse(text)
        except ValueError as exc:
            self.send_json(
                operation_outcome(
                    'expected a JSON acknowledgement {"id": ..., "status": ...}, '
                    f"got a frame that is not JSON ({exc})",
                    code="invalid",
                )
            )
            return

        event_id = message.get("id") if isinstance(message, dict) else None
        if not isinstance(event_id, str):
            self.send_json(
                operation_outcome(
                    'expected an acknowledgement {"id": ..., "status": ...}, '
                    f"got {_shape(message)}",
                    code="invalid",
                )
            )
            return

        pending = self._acks.pop(event_id, None)
        if pending is None:
            return
        event_name, timer = pending
        timer.cancel()

        status = _status(message.get("status"))
        if status is None or 200 <= status < 300:
            return
        self._listener.delivery_failed(
            self, event_id, event_name, f"the subscriber answered status {status}"
        )

    # Lease.

    def _schedule_lease(self) -> None:
        if self._lease_timer is not None:
            self._lease_timer.cancel()
        delay = max(0.0, self.subscription.expires_at - time.time())
        loop = asyncio.get_running_loop()
        self._lease_timer = loop.call_later(delay, self._lease_over)

    def _lease_over(self) -> None:
        self._log.info("lease of %s expired", self.subscription.display_name)
        self._listener.lease_expired(self)

    def _stop_timers(self) -> None:
        if self._lease_timer is not None:
            self._lease_timer.cancel()
        for _, timer in self._acks.values():
            timer.cancel()
        self._acks.clear()


def _disconnect_code(message: Mapping[str, Any]) -> int:
    """The close code of an ASGI disconnect, 1006 when the connection was lost.

    uvicorn reports a TCP connection lost without a close frame as 1005, the
    code of a close frame without a status; only a close frame comes with a
    ``reason`` (possibly empty), so that tells the two apart.
    """
    code = int(message.get("code", 1005))
    if code == 1005 and "reason" not in message:
        return 1006
    return code


def _status(value: Any) -> int | None:
    """An acknowledgement status, a number or a string; None when absent."""
    if isinstance(value, bool):
        return 500
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None if value is None else 500


def _shape(message: Any) -> str:
    if isinstance(message, dict):
        return f"an object with keys {sorted(message)[:5]}"
    return type(message).__name__
