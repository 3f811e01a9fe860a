"""The store contract (store/base.py), on the memory and the Redis backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fhircast_hub.backend import open_backend, parse_sentinel_url
from fhircast_hub.config import Settings
from fhircast_hub.context import OpenContext, TopicContext
from fhircast_hub.errors import BackendUnavailable
from fhircast_hub.store.base import Store
from fhircast_hub.subscriptions import Subscription
from redis_server import RedisServer


Received = list[tuple[str, bytes]]


@pytest.fixture
async def backend(
    backend_settings: dict[str, Any],
) -> AsyncIterator[tuple[Store, Received]]:
    """A store whose broker listens to the topic "t"; what arrives is recorded."""
    store, broker = await open_backend(Settings(**backend_settings))
    received: Received = []
    await broker.start(lambda topic, data: received.append((topic, data)))
    await broker.listen("t")
    yield store, received
    await broker.close()
    await store.close()


async def test_store_subscription_lapses_at_its_lease(
    backend: tuple[Store, Received],
) -> None:
    store, _ = backend
    await store.save_subscription(Subscription("e1", "t", ("Patient-open",), 1e12))
    await store.save_subscription(
        Subscription("e2", "t", ("Patient-open",), time.time() + 0.2)
    )

    assert await store.get_subscription("e2") is not None
    await asyncio.sleep(0.3)

    assert await store.get_subscription("e2") is None
    live = await store.get_subscription("e1")
    assert live is not None and live.events == ("Patient-open",)
    assert (await store.delete_subscription("e1")) == live
    assert await store.get_subscription("e1") is None


async def test_store_claim_is_renewed_only_by_its_holder(
    backend: tuple[Store, Received],
) -> None:
    store, _ = backend
    assert await store.claim_connection("e", "a", 0.3)
    assert not await store.claim_connection("e", "b", 0.3)
    assert await store.claim_connection("e", "a", 0.3)

    await store.release_connection("e", "b")
    assert not await store.claim_connection("e", "b", 0.3)
    await store.release_connection("e", "a")
    assert await store.claim_connection("e", "b", 0.2)

    await asyncio.sleep(0.3)
    assert await store.claim_connection("e", "a", 1)


async def test_store_commit_is_compare_and_set_and_publishes(
    backend: tuple[Store, Received],
) -> None:
    store, received = backend
    assert not await store.topic_exists("t")
    await store.create_topic("t")
    assert await store.topic_exists("t")
    state, revision = await store.load_context("t")
    assert state == TopicContext() and revision == 0

    opened = TopicContext(
        [OpenContext("Patient", "p1", "v1", {"id": "x"}, {"Observation/o": {}})],
        "Patient/p1",
    )
    assert await store.commit_context("t", opened, 0, b"first")
    assert not await store.commit_context("t", TopicContext(), 0, b"stale")

    assert await store.load_context("t") == (opened, 1)
    for _ in range(100):
        if received:
            break
        await asyncio.sleep(0.01)
    assert received == [("t", b"first")]


async def test_store_event_id_is_claimed_once_within_the_window(
    backend: tuple[Store, Received],
) -> None:
    store, _ = backend
    assert await store.claim_event_id("t", "id-1", 60)
    assert not await store.claim_event_id("t", "id-1", 60)
    assert await store.claim_event_id("other", "id-1", 60)

    await store.release_event_id("t", "id-1")
    assert await store.claim_event_id("t", "id-1", 60)


async def test_redis_store_raises_backend_unavailable_when_redis_is_down(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    store, broker = await open_backend(Settings(redis_url=server.url))
    await store.ping()
    server.stop()

    with pytest.raises(BackendUnavailable) as caught:
        await store.load_context("t")
    assert caught.value.status_code == 503
    with pytest.raises(BackendUnavailable):
        await store.ping()
    with pytest.raises(BackendUnavailable):
        await broker.publish("t", b"message")
    await broker.close()
    await store.close()


def test_sentinel_url_names_sentinels_service_and_database() -> None:
    sentinels, service, options = parse_sentinel_url(
        "redis+sentinel://:s%40cret@10.0.0.1:26380,sentinel-b/mymaster/2"
    )
    assert sentinels == [("10.0.0.1", 26380), ("sentinel-b", 26379)]
    assert service == "mymaster"
    assert options == {"db": 2, "password": "s@cret"}

    with pytest.raises(ValueError, match="service name"):
        parse_sentinel_url("redis+sentinel://sentinel-a:26379")


async def test_store_lists_live_webhook_subscriptions_of_a_topic(
    backend: tuple[Store, Received],
) -> None:
    store, _ = backend
    for endpoint, expires_at in (("w1", 1e12), ("w2", time.time() + 0.2)):
        await store.save_subscription(
            Subscription(endpoint, "t", ("Patient-open",), expires_at, None, "webhook")
        )
    await store.save_subscription(Subscription("ws", "t", ("Patient-open",), 1e12))

    listed = await store.list_webhook_subscriptions("t")
    assert sorted(s.endpoint for s in listed) == ["w1", "w2"]
    await asyncio.sleep(0.3)
    assert [s.endpoint for s in await store.list_webhook_subscriptions("t")] == ["w1"]

    await store.delete_subscription("w1")
    assert await store.list_webhook_subscriptions("t") == []
