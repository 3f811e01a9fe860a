"""Choosing the store and broker from settings."""

from __future__ import annotations

from .broker.base import Broker
from .broker.memory import MemoryBroker
from .config import Settings
from .store.base import Store
from .store.memory import MemoryStore


__all__ = ["open_backend"]


async def open_backend(settings: Settings) -> tuple[Store, Broker]:
    """The embedded memory backend (a Redis one comes with FHIRCAST_HUB_REDIS_URL)."""
    broker = MemoryBroker()
    return MemoryStore(broker), broker
