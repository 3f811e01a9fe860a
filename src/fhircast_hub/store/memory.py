"""The embedded store: plain dictionaries in one hub process.

Every method runs without awaiting, so each is atomic under asyncio; the
compare-and-set in ``commit_context`` publishes through the memory broker in
the same step.
"""

from __future__ import annotations

import time

from ..broker.memory import MemoryBroker
from ..context import TopicContext
from ..subscriptions import Subscription
from .base import Versioned


__all__ = ["MemoryStore"]

_PURGE_EVERY = 100


class MemoryStore:
    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker
        self._subscriptions: dict[str, Subscription] = {}
        self._webhooks: dict[str, set[str]] = {}
        self._claims: dict[str, tuple[str, float]] = {}
        self._topics: set[str] = set()
        self._contexts: dict[str, Versioned] = {}
        self._event_ids: dict[tuple[str, str], float] = {}
        self._saves = 0

    async def save_subscription(self, subscription: Subscription) -> None:
        self._subscriptions[subscription.endpoint] = subscription
        if subscription.channel_type == "webhook":
            self._webhooks.setdefault(subscription.topic, set()).add(
                subscription.endpoint
            )
        self._saves += 1
        if self._saves % _PURGE_EVERY == 0:
            # Subscriptions that never connect are otherwise never looked up.
            now = time.time()
            for endpoint, stored in list(self._subscriptions.items()):
                if stored.expires_at <= now:
                    del self._subscriptions[endpoint]
                    self._webhooks.get(stored.topic, set()).discard(endpoint)

    async def get_subscription(self, endpoint: str) -> Subscription | None:
        subscription = self._subscriptions.get(endpoint)
        if subscription is not None and subscription.expires_at <= time.time():
            del self._subscriptions[endpoint]
            return None
        return subscription

    async def delete_subscription(self, endpoint: str) -> Subscription | None:
        stored = self._subscriptions.get(endpoint)
        subscription = await self.get_subscription(endpoint)
        self._subscriptions.pop(endpoint, None)
        self._claims.pop(endpoint, None)
        if stored is not None:
            self._webhooks.get(stored.topic, set()).discard(endpoint)
        return subscription

    async def list_webhook_subscriptions(self, topic: str) -> list[Subscription]:
        endpoints = self._webhooks.get(topic, set())
        live: list[Subscription] = []
        for endpoint in list(endpoints):
            subscription = await self.get_subscription(endpoint)
            if subscription is None:
                endpoints.discard(endpoint)
            else:
                live.append(subscription)
        return live

    async def claim_connection(self, endpoint: str, holder: str, ttl: float) -> bool:
        now = time.monotonic()
        current = self._claims.get(endpoint)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self._claims[endpoint] = (holder, now + ttl)
        return True

    async def release_connection(self, endpoint: str, holder: str) -> None:
        current = self._claims.get(endpoint)
        if current is not None and current[0] == holder:
            del self._claims[endpoint]

    async def create_topic(self, topic: str) -> None:
        self._topics.add(topic)

    async def topic_exists(self, topic: str) -> bool:
        return topic in self._topics

    async def load_context(self, topic: str) -> Versioned:
        versioned = self._contexts.get(topic, Versioned(TopicContext(), 0))
        # Contexts are values that the rules never modify (see context.py).
        return versioned

    async def commit_context(
        self, topic: str, state: TopicContext, revision: int, message: bytes
    ) -> bool:
        current = self._contexts.get(topic)
        if (current.revision if current is not None else 0) != revision:
            return False
        self._contexts[topic] = Versioned(state, revision + 1)
        self._broker.publish_now(topic, message)
        return True

    async def claim_event_id(self, topic: str, event_id: str, window: float) -> bool:
        now = time.monotonic()
        self._forget_old_event_ids(now)
        key = (topic, event_id)
        if key in self._event_ids:
            return False
        self._event_ids[key] = now + window
        return True

    async def release_event_id(self, topic: str, event_id: str) -> None:
        self._event_ids.pop((topic, event_id), None)

    def _forget_old_event_ids(self, now: float) -> None:
        # Insertion order is expiry order (one window for all), so stop early.
        for key, expires in list(self._event_ids.items()):
            if expires > now:
                break
            del self._event_ids[key]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
