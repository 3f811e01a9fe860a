"""The state interface every backend implements.

Contract, for the memory and the Redis store alike:

- Subscriptions are keyed by endpoint id. ``get_subscription`` never returns
  one whose lease has run out; ``delete_subscription`` is final.
- STU2 webhook subscriptions (``channel_type == "webhook"``) are also listed
  per topic, as a set of endpoint ids that ``save_subscription`` adds to and
  ``delete_subscription`` removes from; ``list_webhook_subscriptions`` reads
  it. The process that accepts an event delivers it to these subscribers,
  so every backend (the Redis one included) must implement the set.
- A websocket connection is *claimed* per endpoint, so that a second
  concurrent socket on one endpoint is refused even when it reaches another
  hub process. A claim lives ``ttl`` seconds unless renewed, so the claims of
  a crashed process lapse on their own.
- Each topic's context is versioned by a revision number. ``commit_context``
  is a compare-and-set that, in the same atomic step, publishes the event
  that made the change on the topic's broker channel: every subscriber sees
  context changes in the order they were committed.
- Event ids are claimed per topic for a window, so that a repeated id is
  recognized; a claim is released when the event it named was refused.

Methods raise :class:`~fhircast_hub.errors.BackendUnavailable` when the
backing service cannot be reached.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from ..context import TopicContext
from ..subscriptions import Subscription


__all__ = ["Store", "Versioned"]


class Versioned(NamedTuple):
    """A topic context and the revision it was read at."""

    state: TopicContext
    revision: int


class Store(Protocol):
    async def save_subscription(self, subscription: Subscription) -> None:
        """Create or replace a subscription; it lapses at its ``expires_at``."""

    async def get_subscription(self, endpoint: str) -> Subscription | None:
        """The live subscription with this endpoint id, or None."""

    async def delete_subscription(self, endpoint: str) -> Subscription | None:
        """Remove a subscription for good; return it if it was live."""

    async def list_webhook_subscriptions(self, topic: str) -> list[Subscription]:
        """The live webhook subscriptions of a topic, in no particular order.

        Endpoint ids whose subscription has lapsed are dropped from the set.
        """

    async def claim_connection(self, endpoint: str, holder: str, ttl: float) -> bool:
        """Claim or renew the one socket of an endpoint for ``holder``."""

    async def release_connection(self, endpoint: str, holder: str) -> None:
        """Release a claim, if ``holder`` still holds it."""

    async def create_topic(self, topic: str) -> None:
        """Record that a topic exists (a subscribe or an event created it)."""

    async def topic_exists(self, topic: str) -> bool:
        """Whether any subscribe or event ever created the topic."""

    async def load_context(self, topic: str) -> Versioned:
        """The topic's context and its revision (an empty context at 0)."""

    async def commit_context(
        self, topic: str, state: TopicContext, revision: int, message: bytes
    ) -> bool:
        """Save ``state`` and publish ``message`` if the revision is unchanged."""

    async def claim_event_id(self, topic: str, event_id: str, window: float) -> bool:
        """True the first time an event id is seen on a topic within ``window``."""

    async def release_event_id(self, topic: str, event_id: str) -> None:
        """Forget an event id, so that a corrected retry is not a duplicate."""

    async def ping(self) -> None:
        """Raise BackendUnavailable unless the store answers."""

    async def close(self) -> None:
        """Release connections; the store is not used afterwards."""
