"""The hub: subscriptions, events and websockets over one store and broker.

Routes call the hub; the hub applies the pure rules (``subscriptions``,
``events``, ``context``) and does the I/O through the store, the broker and
the websockets this process holds. Several hub processes can share one
store and broker: a subscribe may land on one process, its websocket on
another and an event on a third.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Coroutine
from dataclasses import asdict
from typing import Any

import httpx2
from starlette.websockets import WebSocket

from . import stu2
from .broker.base import Broker
from .broker.messages import (
    ControlMessage,
    EventMessage,
    decode,
    encode_batch,
    encode_control,
    encode_event,
)
from .channels.callbacks import open_callback_client
from .channels.registry import LocalChannels
from .channels.websocket import NORMAL_CLOSE_CODES, WebSocketChannel
from .config import Settings
from .context import apply_event, current_context, replay_events
from .errors import BackendUnavailable, Conflict, InvalidRequest, NotFound
from .events.catalog import EventName
from .events.validation import Notification
from .metrics import HubMetrics
from .store.base import Store
from .subscriptions import (
    Subscription,
    SubscriptionRequest,
    lease_expiry,
    new_endpoint_id,
)
from .syncerror import sync_error_event
from .webhooks import Webhooks


__all__ = ["Hub"]

logger = logging.getLogger("fhircast_hub.hub")

# A subscriber that closes and reconnects at once may come back before its
# old socket has let go of the endpoint: the claim is retried this long.
CLAIM_GRACE = 0.5
CLAIM_RETRY = 0.02
COMMIT_ATTEMPTS = 50


class Hub:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: Broker,
        http: httpx2.AsyncClient | None = None,
    ) -> None:
        """``http`` is the client for webhook callbacks; one is made if None."""
        self.settings = settings
        self.store = store
        self.broker = broker
        self._own_http = http is None
        self.http = http or open_callback_client(settings)
        self.webhooks = Webhooks(settings, store, self.http, self._report_subscription)
        self.channels = LocalChannels()
        self.holder = secrets.token_hex(8)
        self.metrics = HubMetrics()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renewer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.broker.start(self._on_message)
        self._renewer = asyncio.create_task(self._renew_claims())

    async def stop(self) -> None:
        """Close every socket with 1001, so subscribers reconnect elsewhere."""
        for channel in self.channels:
            channel.abort(1001, "hub shutting down")
        if self._renewer is not None:
            self._renewer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.webhooks.close()
        if self._own_http:
            await self.http.aclose()
        await self.broker.close()
        await self.store.close()

    # Subscriptions.

    async def subscribe(
        self,
        request: SubscriptionRequest,
        events: tuple[EventName, ...] | None = None,
        lease_cap: float | None = None,
    ) -> Subscription:
        """Create a subscription, or renew the one its endpoint names.

        ``events`` are the granted events (all requested when None);
        ``lease_cap`` is the latest time the lease may run to (token expiry).
        """
        granted = tuple(name.canonical for name in (events or request.events))
        if request.fhircast_version == "STU2":
            granted = tuple(stu2.event_name(name) for name in granted)
        expires_at = lease_expiry(
            request.lease_seconds,
            self.settings.lease_default,
            self.settings.lease_max,
            now=time.time(),
            cap=lease_cap,
        )
        await self.store.create_topic(request.topic)
        self.metrics.subscriptions.inc()

        if request.endpoint is None:
            subscription = Subscription(
                new_endpoint_id(),
                request.topic,
                granted,
                expires_at,
                request.subscriber_name,
                fhircast_version=request.fhircast_version,
            )
            await self.store.save_subscription(subscription)
            logger.info(
                "subscription created: %s on topic %s for %s",
                subscription.display_name,
                _short(request.topic),
                ",".join(granted),
            )
            return subscription

        existing = await self._subscription_of(request)
        subscription = existing.renewed(granted, expires_at, request.subscriber_name)
        await self.store.save_subscription(subscription)
        await self.broker.publish(
            request.topic,
            encode_control(
                "resubscribe", subscription.endpoint, subscription=asdict(subscription)
            ),
        )
        logger.info("subscription renewed: %s", subscription.display_name)
        return subscription

    async def unsubscribe(self, request: SubscriptionRequest) -> Subscription:
        """End a subscription for good: deny and close its socket, wherever it is."""
        subscription = await self._subscription_of(request)
        await self.store.delete_subscription(subscription.endpoint)
        await self.broker.publish(
            request.topic, encode_control("unsubscribe", subscription.endpoint)
        )
        logger.info("subscription ended: %s", subscription.display_name)
        return subscription

    async def _subscription_of(self, request: SubscriptionRequest) -> Subscription:
        assert request.endpoint is not None, "callers check for an endpoint"
        subscription = await self.store.get_subscription(request.endpoint)
        if subscription is None and self.settings.ira_mode:
            # IHE IRA (RAD-152) answers an endpoint that matches nothing with 400.
            raise InvalidRequest(
                "expected hub.channel.endpoint of a live subscription, got one "
                "that matches none"
            )
        if subscription is None:
            raise NotFound(
                f"no live subscription has the endpoint {request.endpoint[:8]}...; "
                "it was unsubscribed, its lease ran out, or it never existed"
            )
        if subscription.topic != request.topic:
            raise InvalidRequest(
                "expected hub.channel.endpoint of a subscription to the topic "
                f"{request.topic!r}, got the endpoint of another topic"
            )
        return subscription

    # Events.

    async def publish(self, notification: Notification) -> int:
        """Apply an event to its topic's context and distribute it.

        Returns the status to answer the sender with: 202, or 206 when a
        select named resources the hub does not know.
        """
        topic = notification.topic
        if not self.settings.ira_mode:
            await self.store.create_topic(topic)
        elif not await self.store.topic_exists(topic):
            # An IRA session starts with a subscribe (RAD-146); events for a
            # topic no subscribe created are refused (RAD-148 to RAD-151).
            raise InvalidRequest(
                f"no subscribe created the topic {topic!r}; in IHE IRA mode a "
                "reporting session starts with a subscribe"
            )
        window = self.settings.duplicate_window
        if not await self.store.claim_event_id(topic, notification.id, window):
            logger.info(
                "event %s repeated on topic %s: not delivered again",
                notification.id,
                _short(topic),
            )
            self.metrics.duplicates.inc()
            return 202

        try:
            status, sent = await self._commit(notification)
        except BaseException:
            await self.store.release_event_id(topic, notification.id)
            raise
        # This process accepted the event, so it alone delivers to webhooks.
        if sent:
            await self.webhooks.dispatch(topic, sent)
        self.metrics.events.labels(notification.name.canonical).inc()
        logger.debug(
            "event %s (%s) accepted", notification.id, notification.name.canonical
        )
        return status

    async def _commit(
        self, notification: Notification
    ) -> tuple[int, list[tuple[dict[str, Any], str | None]]]:
        """Apply and publish; return the status and the events sent, each with
        the event whose subscribers it skips (derived opens)."""
        topic = notification.topic
        for _ in range(COMMIT_ATTEMPTS):
            state, revision = await self.store.load_context(topic)
            change = apply_event(
                state,
                notification,
                _new_version_id,
                derive_opens=not self.settings.ira_mode,
                max_content_bytes=self.settings.max_body_bytes,
            )
            if change is None:
                message = encode_event(
                    notification.id, notification.name.canonical, notification.body
                )
                await self.broker.publish(topic, message)
                return 202, [(notification.body, None)]
            if change.distributed is None:
                # Nothing to send, and a select changes no state to commit.
                return change.status, []

            messages = [
                encode_event(
                    derived.event["id"],
                    derived.event["event"]["hub.event"],
                    derived.event,
                    unless=derived.unless,
                )
                for derived in change.derived
            ]
            messages.append(
                encode_event(
                    notification.id, notification.name.canonical, change.distributed
                )
            )
            message = messages[0] if len(messages) == 1 else encode_batch(messages)
            if await self.store.commit_context(topic, change.state, revision, message):
                sent = [(derived.event, derived.unless) for derived in change.derived]
                return change.status, [*sent, (change.distributed, None)]
        raise BackendUnavailable(
            f"the context of topic {topic!r} changed {COMMIT_ATTEMPTS} times while "
            "this event was applied; send it again"
        )

    async def current_context(self, topic: str) -> dict[str, Any]:
        if not await self.store.topic_exists(topic):
            raise NotFound(f"no subscribe or event ever created the topic {topic!r}")
        state, _ = await self.store.load_context(topic)
        return current_context(state)

    # Websockets.

    async def serve(self, websocket: WebSocket, endpoint: str) -> None:
        """Run one subscriber's websocket until it closes."""
        subscription = await self.store.get_subscription(endpoint)
        if subscription is None:
            raise NotFound(
                "no live subscription has this endpoint: subscribe first, and "
                "do not reuse an endpoint after unsubscribe or lease expiry"
            )
        claim = f"{self.holder}/{secrets.token_hex(8)}"
        if not await self._claim(endpoint, claim):
            raise Conflict(
                "this endpoint already has an open websocket; close it first"
            )

        await websocket.accept()
        channel = WebSocketChannel(
            websocket,
            subscription,
            self,
            ack_timeout=self.settings.ack_timeout,
            queue_size=self.settings.send_queue_size,
            claim=claim,
        )
        logger.info("websocket opened: %s", subscription.display_name)
        try:
            if self.channels.add(channel):
                await self.broker.listen(subscription.topic)
            # Read again now that this socket hears the topic's control
            # messages: an unsubscribe or renewal sent since was missed.
            current = await self.store.get_subscription(endpoint)
            if current is None:
                channel.deny("the subscription ended while this socket connected")
            else:
                channel.confirm(current)
                await self._replay(channel)
            await channel.run()
        finally:
            if self.channels.remove(channel):
                with contextlib.suppress(BackendUnavailable):
                    await self.broker.unlisten(subscription.topic)
            with contextlib.suppress(BackendUnavailable):
                await self.store.release_connection(endpoint, claim)
            logger.info(
                "websocket closed: %s (code %s)",
                channel.subscription.display_name,
                channel.close_code,
            )
            self._report_abnormal_close(channel)

    async def _claim(self, endpoint: str, claim: str) -> bool:
        deadline = time.monotonic() + CLAIM_GRACE
        while not await self.store.claim_connection(endpoint, claim, self._claim_ttl):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(CLAIM_RETRY)
        return True

    async def _replay(self, channel: WebSocketChannel) -> None:
        """Send the open contexts the subscriber missed, ahead of live events.

        STU2 has no replay: its subscribers get live events only.
        """
        if channel.subscription.fhircast_version == "STU2":
            return
        channel.hold()
        replayed: set[str] = set()
        try:
            state, _ = await self.store.load_context(channel.topic)
            for event in replay_events(state, channel.subscription.wants):
                channel.replayed_while_holding(event)
                replayed.add(event["id"])
        finally:
            channel.release(replayed)

    def _on_message(self, topic: str, data: bytes) -> None:
        try:
            messages = decode(data)
        except (ValueError, KeyError) as exc:
            logger.error(
                "dropped a malformed broker message on topic %s: %s", _short(topic), exc
            )
            return

        for message in messages:
            if isinstance(message, EventMessage):
                self._deliver(topic, message)
                continue
            holder = self.channels.get(message.endpoint)
            if holder is not None:
                self._control(holder, message)

    def _deliver(self, topic: str, message: EventMessage) -> None:
        key = message.event_name.lower()
        unless = message.unless.lower() if message.unless is not None else None
        stu2_payload: str | None = None
        for channel in self.channels.of_topic(topic):
            if channel.endpoint == message.exclude or not channel.wants(key):
                continue
            if unless is not None and channel.wants(unless):
                continue
            payload = message.payload
            if channel.subscription.fhircast_version == "STU2":
                # Rendered once per event, for all STU2 sockets.
                if stu2_payload is None:
                    stu2_payload = stu2.render_text(message.payload)
                payload = stu2_payload
            channel.offer(payload, message.event_id, message.event_name)

    def _control(self, channel: WebSocketChannel, message: ControlMessage) -> None:
        if message.operation == "resubscribe":
            fields = message.fields["subscription"]
            fields["events"] = tuple(fields["events"])
            channel.confirm(Subscription(**fields))
            self._spawn(self._replay(channel))
        elif message.operation == "unsubscribe":
            channel.deny("unsubscribed")

    # What channels report (ChannelListener).

    def delivery_failed(
        self, channel: WebSocketChannel, event_id: str, event_name: str, reason: str
    ) -> None:
        logger.warning(
            "delivery of event %s (%s) to %s failed: %s",
            event_id,
            event_name,
            channel.subscription.display_name,
            reason,
        )
        self._report(channel, event_id, event_name, reason)

    def subscriber_silent(
        self, channel: WebSocketChannel, event_id: str, event_name: str
    ) -> None:
        timeout = self.settings.ack_timeout
        self._report(
            channel,
            event_id,
            event_name,
            f"no acknowledgement within {timeout:g} seconds; unsubscribed",
        )
        channel.deny(f"no acknowledgement within {timeout:g} seconds", code=1008)
        self._spawn(self.store.delete_subscription(channel.endpoint))

    def lease_expired(self, channel: WebSocketChannel) -> None:
        self._spawn(self._end_lease(channel))

    async def _end_lease(self, channel: WebSocketChannel) -> None:
        # Another process may have renewed the lease meanwhile.
        current = await self.store.get_subscription(channel.endpoint)
        if current is not None and current.expires_at > time.time():
            channel.confirm(current)
            return
        await self.store.delete_subscription(channel.endpoint)
        channel.deny("lease expired")

    def _report_abnormal_close(self, channel: WebSocketChannel) -> None:
        if channel.closed_by_hub or channel.close_code in NORMAL_CLOSE_CODES:
            return
        if channel.last_event is None:
            return
        event_id, event_name = channel.last_event
        self._report(
            channel,
            event_id,
            event_name,
            f"the websocket closed abnormally (code {channel.close_code})",
        )

    def _report(
        self, channel: WebSocketChannel, event_id: str, event_name: str, reason: str
    ) -> None:
        self._report_subscription(channel.subscription, event_id, event_name, reason)

    def _report_subscription(
        self, subscription: Subscription, event_id: str, event_name: str, reason: str
    ) -> None:
        """Tell the topic's other SyncError subscribers, websocket and webhook,
        that one fell out of sync."""
        if event_name == "SyncError":
            return
        event = sync_error_event(
            topic=subscription.topic,
            event_id=event_id,
            event_name=event_name,
            subscriber_name=subscription.display_name,
            diagnostics=f"{subscription.display_name} is out of sync: {reason}",
        )
        message = encode_event(
            event["id"], "SyncError", event, exclude=subscription.endpoint
        )
        self.metrics.sync_errors.inc()
        self._spawn(self.broker.publish(subscription.topic, message))
        self._spawn(
            self.webhooks.dispatch(
                subscription.topic, [(event, None)], exclude=subscription.endpoint
            )
        )

    # Background work.

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background work failed", exc_info=task.exception())

    @property
    def _claim_ttl(self) -> float:
        # A socket's claim on its endpoint lapses unless renewed, so that the
        # claims of a crashed process free their endpoints for a reconnect
        # elsewhere; it is renewed three times per TTL.
        return self.settings.connection_claim_ttl

    async def _renew_claims(self) -> None:
        while True:
            await asyncio.sleep(self._claim_ttl / 3)
            for channel in self.channels:
                with contextlib.suppress(BackendUnavailable):
                    await self.store.claim_connection(
                        channel.endpoint, channel.claim, self._claim_ttl
                    )


def _new_version_id() -> str:
    return str(uuid.uuid4())


def _short(topic: str) -> str:
    """Topics may be guessable secrets: logs show only their start."""
    return topic[:8]
