"""The embedded broker: one process, delivered in the publishing call."""

from __future__ import annotations

from .base import MessageHandler


__all__ = ["MemoryBroker"]


class MemoryBroker:
    def __init__(self) -> None:
        self._handler: MessageHandler | None = None
        self._topics: set[str] = set()

    async def start(self, handler: MessageHandler) -> None:
        self._handler = handler

    async def publish(self, topic: str, message: bytes) -> None:
        self.publish_now(topic, message)

    def publish_now(self, topic: str, message: bytes) -> None:
        """Deliver synchronously, so the memory store can publish atomically."""
        if self._handler is not None and topic in self._topics:
            self._handler(topic, message)

    async def listen(self, topic: str) -> None:
        self._topics.add(topic)

    async def unlisten(self, topic: str) -> None:
        self._topics.discard(topic)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._handler = None
