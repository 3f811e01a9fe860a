"""Delivery to STU2 webhook subscribers: signed POSTs with retries.

Ordering: each subscriber has its own queue and worker task in this process,
so events reach one callback in the order they were offered, and a slow or
dead callback delays only its own queue, never other subscribers nor the
publisher (:meth:`WebhookSender.offer` never blocks).

Delivery is at least once: a POST that fails with a 5xx answer, a network
error or a timeout is retried with exponential backoff, with the same body,
so the same event id, which lets the subscriber drop a repeat. A 4xx answer
is final (the subscriber refused the event), and so is a callback address the
policy refuses. When an event finally fails, or the subscriber's queue is
full, the listener's ``webhook_failed`` is called (the hub then sends a
syncerror) and the worker moves on to the next event.

The body is signed with ``X-Hub-Signature: sha256=<HMAC-SHA256 of the raw
body keyed with hub.secret>``; without a secret the header is left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import httpx2

from ..subscriptions import Subscription
from .callbacks import CallbackRefused
from .intent import callback_host


__all__ = ["WebhookListener", "WebhookSender", "signature"]

logger = logging.getLogger("fhircast_hub.channels.webhook")


class WebhookListener(Protocol):
    """What the sender reports to the hub."""

    def webhook_failed(
        self, subscription: Subscription, event_id: str, event_name: str, reason: str
    ) -> None: ...


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value of a body."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass(frozen=True)
class _Delivery:
    subscription: Subscription
    body: bytes
    event_id: str
    event_name: str


class WebhookSender:
    """Per-subscriber queues of signed POSTs, with retries and backoff."""

    def __init__(
        self,
        http: httpx2.AsyncClient,
        listener: WebhookListener,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        queue_size: int,
    ) -> None:
        self._http = http
        self._listener = listener
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._queue_size = queue_size
        self._queues: dict[str, deque[_Delivery]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    def offer(
        self, subscription: Subscription, body: bytes, event_id: str, event_name: str
    ) -> None:
        """Queue one event for one subscriber without waiting."""
        endpoint = subscription.endpoint
        queue = self._queues.setdefault(endpoint, deque())
        if len(queue) >= self._queue_size:
            self._listener.webhook_failed(
                subscription,
                event_id,
                event_name,
                f"{len(queue)} events already wait for this webhook",
            )
            return
        queue.append(_Delivery(subscription, body, event_id, event_name))
        if endpoint not in self._workers:
            self._workers[endpoint] = asyncio.create_task(self._work(endpoint))

    async def drain(self) -> None:
        """Wait until every queued event was delivered or reported failed."""
        while self._workers:
            await asyncio.gather(*self._workers.values(), return_exceptions=True)

    async def close(self) -> None:
        """Stop delivering; events still queued are dropped."""
        for worker in self._workers.values():
            worker.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()
        self._queues.clear()

    async def _work(self, endpoint: str) -> None:
        queue = self._queues[endpoint]
        try:
            while queue:
                delivery = queue[0]
                reason = await self._deliver(delivery)
                queue.popleft()
                if reason is not None:
                    self._listener.webhook_failed(
                        delivery.subscription,
                        delivery.event_id,
                        delivery.event_name,
                        reason,
                    )
        finally:
            self._workers.pop(endpoint, None)
            if not queue:
                self._queues.pop(endpoint, None)

    async def _deliver(self, delivery: _Delivery) -> str | None:
        """POST until accepted; None when delivered, else why it failed."""
        subscription = delivery.subscription
        assert subscription.callback is not None, "webhooks have a callback"
        headers = {"Content-Type": "application/json"}
        if subscription.secret:
            headers["X-Hub-Signature"] = signature(subscription.secret, delivery.body)

        reason = ""
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            try:
                # Only the status counts: the answer's body is never read, so
                # a slow or huge one can neither fail an accepted delivery
                # (and have it sent again) nor fill the hub's memory.
                request = self._http.build_request(
                    "POST",
                    subscription.callback,
                    content=delivery.body,
                    headers=headers,
                )
                response = await asyncio.wait_for(
                    self._http.send(request, stream=True), self._timeout
                )
            except CallbackRefused as exc:
                return exc.diagnostics
            except (httpx2.HTTPError, TimeoutError) as exc:
                reason = f"the callback did not answer ({_kind(exc)})"
            else:
                with contextlib.suppress(httpx2.HTTPError):
                    await response.aclose()
                status = response.status_code
                if 200 <= status < 300:
                    return None
                reason = f"the callback answered status {status}"
                if status < 500:
                    return reason
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "event %s to the webhook at %s, attempt %d: %s",
                    delivery.event_id,
                    callback_host(subscription.callback),
                    attempt + 1,
                    reason,
                )
        return f"{reason}, after {self._retries + 1} attempts"


def _kind(error: BaseException) -> str:
    if isinstance(error, TimeoutError | httpx2.TimeoutException):
        return "timed out"
    return type(error).__name__
