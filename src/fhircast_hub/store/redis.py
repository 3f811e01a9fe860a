"""The shared store: every hub process keeps its state in one Redis.

Key schema (``{...}`` is a Redis Cluster hash tag: all keys of one topic, and
both keys of one endpoint, live in one slot, so that a script or a
transaction touching them is valid on a cluster too)::

    fhircast:endpoint:{<endpoint>}:subscription   string, JSON; expires with the lease
    fhircast:endpoint:{<endpoint>}:claim          string, the holder; PX claim TTL
    fhircast:topic:{<topic>}:context              hash: revision, state (JSON)
    fhircast:topic:{<topic>}:webhooks             set of webhook endpoint ids
    fhircast:topic:{<topic>}:event:<id>           string; PX duplicate window

Events of a topic are published on the channel ``fhircast:events:<topic>``.

Leases and claims expire through key TTLs, so nothing needs sweeping and a
crashed process leaves nothing behind for longer than a TTL. The context
compare-and-set and the PUBLISH of the event that made it run in one Lua
script: Redis runs scripts one at a time, so the order in which commits
succeed is the order in which every subscriber receives their events.

Every method raises :class:`~fhircast_hub.errors.BackendUnavailable` when
Redis cannot be reached, times out, or refuses writes (a replica during a
failover).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator

from pydantic import TypeAdapter
from redis.asyncio import Redis
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
    ReadOnlyError,
    TimeoutError as RedisTimeoutError,
)

from ..context import TopicContext
from ..errors import BackendUnavailable
from ..subscriptions import Subscription
from .base import Versioned


__all__ = ["RedisStore"]

PREFIX = "fhircast"

_subscriptions = TypeAdapter(Subscription)
_contexts = TypeAdapter(TopicContext)

# KEYS[1] context hash; ARGV: expected revision, new state, channel, message.
_COMMIT = """
local revision = tonumber(redis.call('HGET', KEYS[1], 'revision') or '0')
if revision ~= tonumber(ARGV[1]) then
    return 0
end
redis.call('HSET', KEYS[1], 'revision', revision + 1, 'state', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""

# KEYS[1] claim; ARGV: holder, TTL in milliseconds. Take a free claim, or
# renew one this holder already has; never take over another holder's.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
"""

# KEYS[1] claim; ARGV[1] holder.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisStore:
    """The :class:`~fhircast_hub.store.base.Store` on a Redis server.

    ``client`` is shared with the broker for publishing; the store closes it.
    """

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._commit = client.register_script(_COMMIT)
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    @staticmethod
    def channel_for(topic: str) -> str:
        """The pub/sub channel of a topic's events."""
        return f"{PREFIX}:events:{topic}"

    async def save_subscription(self, subscription: Subscription) -> None:
        expires_at = subscription.expires_at
        with _reachable("save a subscription"):
            await self._client.set(
                _subscription_key(subscription.endpoint),
                _dump_subscription(subscription),
                pxat=max(int(expires_at * 1000), 1)
                if math.isfinite(expires_at)
                else None,
            )
            # Added after the subscription exists; readers drop members whose
            # subscription lapsed, so the set needs no expiry of its own.
            if subscription.channel_type == "webhook":
                await self._client.sadd(
                    _webhooks_key(subscription.topic), subscription.endpoint
                )

    async def get_subscription(self, endpoint: str) -> Subscription | None:
        with _reachable("read a subscription"):
            data = await self._client.get(_subscription_key(endpoint))
        if data is None:
            return None
        subscription = _load_subscription(data)
        # The key expires within a millisecond of the lease; be exact.
        return subscription if subscription.expires_at > time.time() else None

    async def delete_subscription(self, endpoint: str) -> Subscription | None:
        with _reachable("delete a subscription"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.getdel(_subscription_key(endpoint))
                pipe.delete(_claim_key(endpoint))
                data, _ = await pipe.execute()
        if data is None:
            return None
        subscription = _load_subscription(data)
        if subscription.channel_type == "webhook":
            with _reachable("delete a subscription"):
                await self._client.srem(_webhooks_key(subscription.topic), endpoint)
        return subscription if subscription.expires_at > time.time() else None

    async def list_webhook_subscriptions(self, topic: str) -> list[Subscription]:
        with _reachable("list webhook subscriptions"):
            endpoints = await self._client.smembers(_webhooks_key(topic))
            if not endpoints:
                return []
            ordered = sorted(
                e.decode() if isinstance(e, bytes) else e for e in endpoints
            )
            # Not MGET: the keys live in different cluster slots.
            async with self._client.pipeline(transaction=False) as pipe:
                for endpoint in ordered:
                    pipe.get(_subscription_key(endpoint))
                found = await pipe.execute()

        now = time.time()
        live, lapsed = [], []
        for endpoint, data in zip(ordered, found, strict=True):
            subscription = _load_subscription(data) if data is not None else None
            if subscription is None or subscription.expires_at <= now:
                lapsed.append(endpoint)
            else:
                live.append(subscription)
        if lapsed:
            with _reachable("list webhook subscriptions"):
                await self._client.srem(_webhooks_key(topic), *lapsed)
        return live

    async def claim_connection(self, endpoint: str, holder: str, ttl: float) -> bool:
        with _reachable("claim a websocket endpoint"):
            claimed = await self._claim(
                keys=[_claim_key(endpoint)], args=[holder, max(1, int(ttl * 1000))]
            )
        return bool(claimed)

    async def release_connection(self, endpoint: str, holder: str) -> None:
        with _reachable("release a websocket endpoint"):
            await self._release(keys=[_claim_key(endpoint)], args=[holder])

    async def create_topic(self, topic: str) -> None:
        with _reachable("create a topic"):
            await self._client.hsetnx(_context_key(topic), "revision", 0)

    async def topic_exists(self, topic: str) -> bool:
        with _reachable("look up a topic"):
            return bool(await self._client.exists(_context_key(topic)))

    async def load_context(self, topic: str) -> Versioned:
        with _reachable("read a topic's context"):
            revision, state = await self._client.hmget(
                _context_key(topic), ["revision", "state"]
            )
        return Versioned(
            _contexts.validate_json(state) if state is not None else TopicContext(),
            int(revision or 0),
        )

    async def commit_context(
        self, topic: str, state: TopicContext, revision: int, message: bytes
    ) -> bool:
        with _reachable("save a topic's context"):
            committed = await self._commit(
                keys=[_context_key(topic)],
                args=[
                    revision,
                    _contexts.dump_json(state),
                    self.channel_for(topic),
                    message,
                ],
            )
        return bool(committed)

    async def claim_event_id(self, topic: str, event_id: str, window: float) -> bool:
        if window <= 0:
            return True
        with _reachable("check an event id"):
            claimed = await self._client.set(
                _event_key(topic, event_id), 1, nx=True, px=max(1, int(window * 1000))
            )
        return bool(claimed)

    async def release_event_id(self, topic: str, event_id: str) -> None:
        with _reachable("release an event id"):
            await self._client.delete(_event_key(topic, event_id))

    async def ping(self) -> None:
        with _reachable("answer a ping"):
            await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()


def _dump_subscription(subscription: Subscription) -> str:
    # The json module, not pydantic's: it keeps an endless lease (Infinity).
    return json.dumps(_subscriptions.dump_python(subscription))


def _load_subscription(data: bytes | str) -> Subscription:
    return _subscriptions.validate_python(json.loads(data))


@contextlib.contextmanager
def _reachable(action: str) -> Iterator[None]:
    """Turn Redis connection failures into BackendUnavailable (503)."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, ReadOnlyError) as exc:
        raise BackendUnavailable(
            f"the hub could not {action}: Redis is unavailable "
            f"({type(exc).__name__}); send the request again once it is back"
        ) from exc


def _tag(value: str) -> str:
    """A hash tag for any string: braces inside would end the tag early."""
    return value.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def _subscription_key(endpoint: str) -> str:
    return f"{PREFIX}:endpoint:{{{_tag(endpoint)}}}:subscription"


def _claim_key(endpoint: str) -> str:
    return f"{PREFIX}:endpoint:{{{_tag(endpoint)}}}:claim"


def _context_key(topic: str) -> str:
    return f"{PREFIX}:topic:{{{_tag(topic)}}}:context"


def _webhooks_key(topic: str) -> str:
    return f"{PREFIX}:topic:{{{_tag(topic)}}}:webhooks"


def _event_key(topic: str, event_id: str) -> str:
    return f"{PREFIX}:topic:{{{_tag(topic)}}}:event:{event_id}"
