"""The fan-out interface every backend implements.

A broker carries opaque messages (see ``messages.py``) on one channel per
topic to every hub process that listens to that topic, the publishing
process included. Delivery is at most once and in publish order per topic;
a process that is disconnected from the broker misses what is published
meanwhile and resynchronizes from the store. The handler is called from the
broker's own task and must not block: it only queues work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


__all__ = ["Broker", "MessageHandler"]

MessageHandler = Callable[[str, bytes], None]


class Broker(Protocol):
    async def start(self, handler: MessageHandler) -> None:
        """Begin delivering messages of listened topics to ``handler``."""

    async def publish(self, topic: str, message: bytes) -> None:
        """Send a message to every process listening to ``topic``."""

    async def listen(self, topic: str) -> None:
        """Receive the messages of ``topic`` (this process holds a socket of it)."""

    async def unlisten(self, topic: str) -> None:
        """Stop receiving the messages of ``topic``."""

    async def ping(self) -> None:
        """Raise BackendUnavailable unless messages of listened topics can arrive."""

    async def close(self) -> None:
        """Stop delivering and release connections."""
