"""Where the hub keeps its state: subscriptions, topics, contexts, event ids."""

from .base import Store, Versioned


__all__ = ["Store", "Versioned"]
