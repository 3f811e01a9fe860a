"""STU2 webhook subscriptions: verify, keep, expire and deliver to them.

A webhook subscribe is answered 202 at once; the hub then verifies intent
with a GET to the callback and stores the subscription only when the
callback confirms. Webhook subscriptions live in the store, listed per topic,
so that any hub process can reach them: the process that accepts an event
delivers it to the topic's webhook subscribers, each event once. Lease
expiry is a timer in the process that activated (or last renewed) the
subscription; at expiry the callback gets a denial GET.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import httpx2

from . import stu2
from .channels.callbacks import CallbackPolicy
from .channels.intent import callback_host, send_denial, verify_intent
from .channels.webhook import WebhookSender
from .config import Settings
from .errors import BackendUnavailable, NotFound
from .events.catalog import EventName
from .store.base import Store
from .subscriptions import Subscription, SubscriptionRequest, lease_expiry


__all__ = ["FailureReporter", "Webhooks"]

logger = logging.getLogger("fhircast_hub.webhooks")

# Called with the subscription, the event id and name, and why it failed.
FailureReporter = Callable[[Subscription, str, str, str], None]


class Webhooks:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        http: httpx2.AsyncClient,
        report: FailureReporter,
    ) -> None:
        self.settings = settings
        self.store = store
        self.http = http
        self.policy = CallbackPolicy(
            allow_http=settings.webhook_allow_http,
            allow_private=settings.webhook_allow_private,
        )
        self.sender = WebhookSender(
            http,
            self,
            timeout=settings.webhook_timeout,
            retries=settings.webhook_retries,
            backoff=settings.webhook_backoff,
            queue_size=settings.send_queue_size,
        )
        self._report = report
        self._leases: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def subscribe(
        self,
        request: SubscriptionRequest,
        events: tuple[EventName, ...] | None = None,
        lease_cap: float | None = None,
    ) -> None:
        """Check the callback, then verify intent in the background.

        ``events`` are the granted events (all requested when None);
        ``lease_cap`` is the latest time the lease may run to (token expiry).
        Raises :class:`~fhircast_hub.channels.callbacks.CallbackRefused` (400)
        for a callback the hub will not call.
        """
        assert request.callback is not None, "webhook requests have a callback"
        await self.policy.check(request.callback)
        expires_at = lease_expiry(
            request.lease_seconds,
            self.settings.lease_default,
            self.settings.lease_max,
            now=time.time(),
            cap=lease_cap,
        )
        granted = events if events is not None else request.events
        subscription = Subscription(
            endpoint=stu2.webhook_endpoint_id(request.topic, request.callback),
            topic=request.topic,
            events=tuple(stu2.event_name(name.canonical) for name in granted),
            expires_at=expires_at,
            subscriber_name=request.subscriber_name,
            channel_type="webhook",
            fhircast_version="STU2",
            callback=request.callback,
            secret=request.secret,
        )
        await self.store.create_topic(request.topic)
        self._spawn(self._verify(subscription))

    async def _verify(self, subscription: Subscription) -> None:
        assert subscription.callback is not None, "webhooks have a callback"
        verification = await verify_intent(
            self.http, subscription, self.settings.webhook_timeout
        )
        if not verification.confirmed:
            # An earlier verified subscription of the same callback stays.
            logger.info(
                "webhook at %s not subscribed to topic %s: %s",
                callback_host(subscription.callback),
                subscription.topic[:8],
                verification.reason,
            )
            return

        await self.store.save_subscription(subscription)
        self._schedule_expiry(subscription)
        logger.info(
            "subscription created: webhook at %s on topic %s for %s",
            callback_host(subscription.callback),
            subscription.topic[:8],
            ",".join(subscription.events),
        )

    async def unsubscribe(self, request: SubscriptionRequest) -> None:
        """End a webhook subscription; STU2 forbids verifying an unsubscribe."""
        assert request.callback is not None, "webhook requests have a callback"
        endpoint = stu2.webhook_endpoint_id(request.topic, request.callback)
        timer = self._leases.pop(endpoint, None)
        if timer is not None:
            timer.cancel()
        if await self.store.delete_subscription(endpoint) is None:
            raise NotFound(
                "no live webhook subscription of this hub.callback to the topic "
                f"{request.topic!r}; it was unsubscribed, its lease ran out, or "
                "its intent was never verified"
            )
        logger.info(
            "subscription ended: webhook at %s", callback_host(request.callback)
        )

    async def dispatch(
        self,
        topic: str,
        events: Sequence[tuple[dict[str, Any], str | None]],
        exclude: str | None = None,
    ) -> None:
        """Queue events for the topic's webhook subscribers that want them.

        ``events`` are notifications, each with the event whose subscribers
        it skips, or None (a derived open goes only to those that did not get
        the event that implied it). ``exclude`` names a subscriber to skip
        (the one a syncerror is about). The topic's webhooks are read once
        for all of them.

        Returns once the deliveries are queued, never waiting for a callback.
        A store that cannot be reached loses the webhook deliveries of these
        events (logged); the websocket subscribers still get them.
        """
        try:
            subscriptions = await self.store.list_webhook_subscriptions(topic)
        except BackendUnavailable as exc:
            ids = ", ".join(notification["id"] for notification, _ in events)
            logger.warning(
                "events %s not delivered to webhooks: %s", ids, exc.diagnostics
            )
            return
        subscriptions = [s for s in subscriptions if s.endpoint != exclude]
        if not subscriptions:
            return

        for notification, unless in events:
            event_id = notification["id"]
            event_name = notification["event"]["hub.event"]
            key = event_name.lower()
            skip = unless.lower() if unless is not None else None
            targets = [
                s
                for s in subscriptions
                if s.wants(key) and not (skip is not None and s.wants(skip))
            ]
            if not targets:
                continue
            rendered = stu2.render_notification(notification)
            body = json.dumps(rendered, separators=(",", ":")).encode()
            for subscription in targets:
                self.sender.offer(subscription, body, event_id, event_name)

    def webhook_failed(
        self, subscription: Subscription, event_id: str, event_name: str, reason: str
    ) -> None:
        logger.warning(
            "delivery of event %s (%s) to the webhook at %s failed: %s",
            event_id,
            event_name,
            callback_host(subscription.callback or ""),
            reason,
        )
        self._report(subscription, event_id, event_name, reason)

    # Leases.

    def _schedule_expiry(self, subscription: Subscription) -> None:
        previous = self._leases.pop(subscription.endpoint, None)
        if previous is not None:
            previous.cancel()
        delay = max(0.0, subscription.expires_at - time.time())
        self._leases[subscription.endpoint] = asyncio.get_running_loop().call_later(
            delay, lambda: self._spawn(self._expire(subscription))
        )

    async def _expire(self, subscription: Subscription) -> None:
        self._leases.pop(subscription.endpoint, None)
        current = await self.store.get_subscription(subscription.endpoint)
        if current is not None and current.expires_at > subscription.expires_at:
            return  # renewed; the process that renewed it times the new lease
        await self.store.delete_subscription(subscription.endpoint)
        logger.info(
            "lease of the webhook at %s expired",
            callback_host(subscription.callback or ""),
        )
        await send_denial(
            self.http, subscription, "lease expired", self.settings.webhook_timeout
        )

    # Background work.

    async def drain(self) -> None:
        """Wait for pending verifications and deliveries (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.sender.drain()

    async def close(self) -> None:
        for timer in self._leases.values():
            timer.cancel()
        self._leases.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.sender.close()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("webhook work failed", exc_info=task.exception())
