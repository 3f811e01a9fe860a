"""Fan-out of events and control messages between hub processes."""

from .base import Broker, MessageHandler


__all__ = ["Broker", "MessageHandler"]
