"""Choosing the store and broker from settings, and connecting to Redis.

Without ``redis_url`` the hub runs on the embedded memory backend: one
process, nothing shared. With it, every process shares state and fan-out
through that Redis, reached directly (``redis://``, ``rediss://``,
``unix://``) or through Sentinel (``redis+sentinel://``), which finds the
current master again after a failover.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff

from .broker.base import Broker
from .broker.memory import MemoryBroker
from .broker.redis import RedisBroker
from .config import Settings
from .store.base import Store
from .store.memory import MemoryStore
from .store.redis import RedisStore


__all__ = ["connect_redis", "open_backend"]

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379

# Short timeouts: a request that needs an unreachable Redis should get its 503
# in about a second, not hang for the client's own timeout.
_CONNECTION_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 1.0,
    "socket_timeout": 2.0,
    "socket_keepalive": True,
}


async def open_backend(settings: Settings) -> tuple[Store, Broker]:
    """The Redis backend when ``redis_url`` is set, else the memory backend.

    Nothing is contacted here: a Redis that is down at start-up makes the hub
    answer 503 and report not-ready until it comes up, instead of failing.
    """
    if settings.redis_url is None:
        broker = MemoryBroker()
        return MemoryStore(broker), broker

    # One command pool (with a short retry, so a command on a connection that
    # a Redis restart broke is sent again on a new one) and one client for the
    # pub/sub connection, which must not retry by itself: the broker's
    # supervisor reconnects it and re-subscribes.
    commands = connect_redis(settings.redis_url, retries=2)
    subscriber = connect_redis(settings.redis_url, retries=0)
    store = RedisStore(commands)
    return store, RedisBroker(commands, subscriber, store.channel_for)


def connect_redis(url: str, *, retries: int = 2) -> Redis:
    """A client for a Redis URL; ``redis+sentinel://`` goes through Sentinel.

    A Sentinel URL lists the sentinels and names the service::

        redis+sentinel://[:password@]host[:port][,host[:port]...]/service[/db]

    The password, if any, is used for the master as well as the sentinels.
    Raises ValueError for a Sentinel URL without a service name.
    """
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.05), retries)
    if urlsplit(url).scheme != SENTINEL_SCHEME:
        client: Redis = Redis.from_url(url, retry=retry, **_CONNECTION_OPTIONS)
        return client

    sentinels, service, options = parse_sentinel_url(url)
    sentinel_options = {
        key: value for key, value in options.items() if key in ("username", "password")
    }
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # untyped upstream
        sentinels,
        sentinel_kwargs={**_CONNECTION_OPTIONS, **sentinel_options},
        **_CONNECTION_OPTIONS,
    )
    master: Redis = sentinel.master_for(
        service, redis_class=_SentinelMaster, retry=retry, **options
    )
    return master


class _SentinelMaster(Redis):
    """A master found through Sentinel; closing it closes the sentinel clients."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", ()):
            await sentinel.aclose()


def parse_sentinel_url(
    url: str,
) -> tuple[list[tuple[str, int]], str, dict[str, Any]]:
    """Split a ``redis+sentinel://`` URL: sentinels, service name, options."""
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    sentinels = []
    for host in hosts.split(","):
        name, colon, port = host.strip().rpartition(":")
        if not colon:
            name, port = host.strip(), ""
        sentinels.append((name, int(port or SENTINEL_PORT)))

    path = [segment for segment in parts.path.split("/") if segment]
    if not path:
        raise ValueError(
            f"expected the Sentinel service name in the path of {SENTINEL_SCHEME}://"
            f"hosts/service[/db], got no path in a URL to {hosts!r}"
        )
    options: dict[str, Any] = {}
    if len(path) > 1:
        options["db"] = int(path[1])
    if credentials:
        username, _, password = credentials.partition(":")
        if username:
            options["username"] = unquote(username)
        if password:
            options["password"] = unquote(password)
    return sentinels, unquote(path[0]), options
