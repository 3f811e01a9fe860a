"""The websockets this hub process holds, by topic and by endpoint."""

from __future__ import annotations

from collections.abc import Iterator

from .websocket import WebSocketChannel


__all__ = ["LocalChannels"]


class LocalChannels:
    def __init__(self) -> None:
        self._by_topic: dict[str, set[WebSocketChannel]] = {}
        self._by_endpoint: dict[str, WebSocketChannel] = {}

    def add(self, channel: WebSocketChannel) -> bool:
        """Register a channel; True if it is the first of its topic here."""
        self._by_endpoint[channel.endpoint] = channel
        channels = self._by_topic.setdefault(channel.topic, set())
        channels.add(channel)
        return len(channels) == 1

    def remove(self, channel: WebSocketChannel) -> bool:
        """Unregister a channel; True if it was the last of its topic here."""
        if self._by_endpoint.get(channel.endpoint) is channel:
            del self._by_endpoint[channel.endpoint]
        channels = self._by_topic.get(channel.topic)
        if channels is None:
            return False
        channels.discard(channel)
        if channels:
            return False
        del self._by_topic[channel.topic]
        return True

    def of_topic(self, topic: str) -> set[WebSocketChannel]:
        return self._by_topic.get(topic, set())

    def get(self, endpoint: str) -> WebSocketChannel | None:
        return self._by_endpoint.get(endpoint)

    def __iter__(self) -> Iterator[WebSocketChannel]:
        return iter(list(self._by_endpoint.values()))

    def __len__(self) -> int:
        return len(self._by_endpoint)
