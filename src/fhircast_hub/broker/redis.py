"""The shared broker: Redis pub/sub, one connection per hub process.

A channel per topic carries that topic's events and control messages. The
process subscribes to a topic's channel while it holds at least one socket
of that topic (``listen`` and ``unlisten`` are reference-counted), so an event
reaches only the processes that have someone to deliver it to.

One supervised reader task owns the pub/sub connection. When the connection
fails, the reader logs it, waits with exponential backoff, connects again and
re-subscribes every channel still listened to; :meth:`RedisBroker.ping`
raises until it has, so ``/readyz`` reports the process not ready meanwhile.
Messages published while a process was disconnected are not delivered to it
(Redis pub/sub keeps nothing); the current context in the store stays
correct, and a subscriber that reconnects gets it replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
    TimeoutError as RedisTimeoutError,
)

from ..errors import BackendUnavailable
from .base import MessageHandler


__all__ = ["RedisBroker"]

logger = logging.getLogger("fhircast_hub.broker.redis")

BACKOFF_MIN = 0.1
BACKOFF_MAX = 2.0
# How long listen() waits for Redis to confirm a SUBSCRIBE. Past it, the
# supervisor's reconnect subscribes the channel anyway.
SUBSCRIBE_TIMEOUT = 5.0
# The reader wakes at least this often, so that redis-py's health-check PING
# goes out on an otherwise quiet connection.
READ_TIMEOUT = 1.0
_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisBroker:
    """The :class:`~fhircast_hub.broker.base.Broker` on Redis pub/sub.

    ``commands`` publishes (it may be shared with the store); ``subscriber``
    is used only for this process's pub/sub connection and is closed with
    the broker. ``channel_for`` names a topic's channel.

    Delivery is at most once, in the order Redis received the publishes, the
    same order for every process. The handler runs in the reader task; an
    exception from it is logged and the message skipped.
    """

    def __init__(
        self,
        commands: Redis,
        subscriber: Redis,
        channel_for: Callable[[str], str],
    ) -> None:
        self._commands = commands
        self._subscriber = subscriber
        self._channel_for = channel_for
        self._handler: MessageHandler | None = None
        self._listeners: dict[str, int] = {}
        self._topics: dict[bytes, str] = {}
        self._pubsub: PubSub | None = None
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self, handler: MessageHandler) -> None:
        """Start the supervised reader; it connects in the background."""
        self._handler = handler
        self._reader = asyncio.create_task(self._supervise())

    async def publish(self, topic: str, message: bytes) -> None:
        """PUBLISH on the topic's channel; BackendUnavailable if Redis is down."""
        try:
            await self._commands.publish(self._channel_for(topic), message)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise BackendUnavailable(
                "the hub could not distribute the message: Redis is unavailable "
                f"({type(exc).__name__}); send the request again once it is back"
            ) from exc

    async def listen(self, topic: str) -> None:
        """Subscribe to a topic's channel, returning once Redis confirmed it.

        Only the first listener of a topic subscribes. While disconnected this
        returns at once: the reconnect subscribes every listened topic.
        """
        count = self._listeners.get(topic, 0)
        self._listeners[topic] = count + 1
        if count:
            return
        channel = self._channel_for(topic).encode()
        self._topics[channel] = topic
        pubsub = self._pubsub
        if pubsub is None:
            return
        confirmed = self._expect_confirmation(channel)
        with contextlib.suppress(*_CONNECTION_ERRORS, TimeoutError):
            await pubsub.subscribe(channel)
            await asyncio.wait_for(asyncio.shield(confirmed), SUBSCRIBE_TIMEOUT)

    async def unlisten(self, topic: str) -> None:
        """Drop one listener of a topic; the last one unsubscribes."""
        count = self._listeners.get(topic, 0) - 1
        if count > 0:
            self._listeners[topic] = count
            return
        self._listeners.pop(topic, None)
        channel = self._channel_for(topic).encode()
        self._topics.pop(channel, None)
        confirmed = self._confirmations.pop(channel, None)
        if confirmed is not None and not confirmed.done():
            confirmed.set_result(None)  # nobody waits for it any more
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await pubsub.unsubscribe(channel)

    async def ping(self) -> None:
        """Raise BackendUnavailable unless every listened channel is subscribed."""
        if self._pubsub is None or any(
            not confirmed.done() for confirmed in self._confirmations.values()
        ):
            raise BackendUnavailable(
                "the hub's Redis pub/sub connection is down or re-subscribing; "
                "events cannot reach this process's subscribers yet"
            )

    async def close(self) -> None:
        """Stop the reader and close the pub/sub connection."""
        self._handler = None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._subscriber.aclose()

    # The reader.

    async def _supervise(self) -> None:
        delay = BACKOFF_MIN
        lost = False
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                await self._connect(pubsub)
                if lost:
                    logger.info("redis pub/sub reconnected")
                lost = False
                delay = BACKOFF_MIN
                await self._read(pubsub)
            except _CONNECTION_ERRORS as exc:
                if not lost:
                    logger.warning(
                        "redis pub/sub connection lost, reconnecting: %s", exc
                    )
                lost = True
            finally:
                self._pubsub = None
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped upstream
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _connect(self, pubsub: PubSub) -> None:
        channels = list(self._topics)
        for channel in list(self._confirmations):
            if channel not in self._topics:
                del self._confirmations[channel]
        if channels:
            for channel in channels:
                self._expect_confirmation(channel)
            await pubsub.subscribe(*channels)
        else:
            # A PING opens the connection, so there is something to read.
            await pubsub.ping()
        self._pubsub = pubsub

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=READ_TIMEOUT)
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"]
        if kind == "subscribe":
            confirmed = self._confirmations.get(channel)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
            return
        if kind != "message" or self._handler is None:
            return
        topic = self._topics.get(channel)
        if topic is None:
            return  # unsubscribed meanwhile
        try:
            self._handler(topic, message["data"])
        except Exception:
            logger.exception("handling a broker message failed")

    def _expect_confirmation(self, channel: bytes) -> asyncio.Future[None]:
        confirmed = self._confirmations.get(channel)
        if confirmed is None or confirmed.done():
            confirmed = asyncio.get_running_loop().create_future()
            self._confirmations[channel] = confirmed
        return confirmed
