"""Prometheus metrics of one hub process (a registry per hub, not global)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


if TYPE_CHECKING:
    from .hub import Hub


__all__ = ["HubMetrics", "render"]


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "fhircast_events_total",
            "Events accepted from senders, by event name.",
            ["event"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "fhircast_duplicate_events_total",
            "Events answered 202 but not delivered again (a repeated id).",
            registry=self.registry,
        )
        self.subscriptions = Counter(
            "fhircast_subscriptions_total",
            "Subscribe requests granted, new and renewed.",
            registry=self.registry,
        )
        self.sync_errors = Counter(
            "fhircast_sync_errors_total",
            "SyncErrors the hub originated.",
            registry=self.registry,
        )
        self.websockets = Gauge(
            "fhircast_websockets",
            "Websockets open on this process.",
            registry=self.registry,
        )


def render(hub: Hub) -> tuple[bytes, str]:
    hub.metrics.websockets.set(len(hub.channels))
    return generate_latest(hub.metrics.registry), CONTENT_TYPE_LATEST
