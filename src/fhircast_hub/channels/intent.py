"""STU2 webhook intent verification and denial: GETs to the callback.

The callback keeps its own query string; the hub's parameters are appended
after it. A subscription becomes active only when the verification GET is
answered 2xx with the challenge as the body; any other answer, a redirect, a
timeout or a refused address means the subscriber did not confirm. A denial
GET is informational: its answer is not checked beyond logging.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx2

from ..subscriptions import Subscription
from .callbacks import CallbackRefused


__all__ = [
    "Verification",
    "callback_host",
    "send_denial",
    "verify_intent",
    "with_query",
]

logger = logging.getLogger("fhircast_hub.channels.intent")

# The challenge is 43 characters; an answer is read no further than this.
MAX_ANSWER_BYTES = 1024


@dataclass(frozen=True)
class Verification:
    """The outcome of one verification: confirmed or not, and why not."""

    confirmed: bool
    reason: str = ""


def with_query(callback: str, parameters: dict[str, str]) -> str:
    """The callback URL with ``parameters`` appended to its own query string."""
    base = callback.split("#", 1)[0]
    query = urlencode(parameters)
    if "?" not in base:
        return f"{base}?{query}"
    if base.endswith(("?", "&")):
        return base + query
    return f"{base}&{query}"


def callback_host(callback: str) -> str:
    """What logs show of a callback: its host only (paths may be secrets)."""
    return urlsplit(callback).hostname or "?"


async def verify_intent(
    http: httpx2.AsyncClient, subscription: Subscription, timeout: float
) -> Verification:
    """Ask the callback to confirm the subscription (STU2 intent verification)."""
    assert subscription.callback is not None, "webhook subscriptions have a callback"
    challenge = secrets.token_urlsafe(32)
    url = with_query(
        subscription.callback,
        {
            "hub.mode": "subscribe",
            "hub.topic": subscription.topic,
            "hub.events": ",".join(subscription.events),
            "hub.challenge": challenge,
            "hub.lease_seconds": str(subscription.lease_seconds(time.time())),
        },
    )
    try:
        status, body = await asyncio.wait_for(
            _get(http, url, MAX_ANSWER_BYTES), timeout
        )
    except CallbackRefused as exc:
        return Verification(False, exc.diagnostics)
    except (httpx2.HTTPError, TimeoutError) as exc:
        return Verification(False, f"the callback did not answer: {_kind(exc)}")

    if not 200 <= status < 300:
        return Verification(False, f"the callback answered {status}")
    # Some frameworks add a trailing newline to a plain-text body.
    if body.decode("utf-8", "replace").strip() != challenge:
        return Verification(False, "the callback answered without the challenge")
    return Verification(True)


async def send_denial(
    http: httpx2.AsyncClient, subscription: Subscription, reason: str, timeout: float
) -> None:
    """Tell the callback its subscription ended (``hub.mode=denied``)."""
    assert subscription.callback is not None, "webhook subscriptions have a callback"
    url = with_query(
        subscription.callback,
        {
            "hub.mode": "denied",
            "hub.topic": subscription.topic,
            "hub.events": ",".join(subscription.events),
            "hub.reason": reason,
        },
    )
    try:
        status, _ = await asyncio.wait_for(_get(http, url, 0), timeout)
    except (CallbackRefused, httpx2.HTTPError, TimeoutError) as exc:
        logger.warning(
            "denial to the webhook at %s not delivered: %s",
            callback_host(subscription.callback),
            _kind(exc),
        )
        return
    if not 200 <= status < 300:
        logger.warning(
            "the webhook at %s answered the denial with %s",
            callback_host(subscription.callback),
            status,
        )


async def _get(http: httpx2.AsyncClient, url: str, limit: int) -> tuple[int, bytes]:
    """GET: the status, and the body of a 2xx answer up to just past ``limit``
    bytes, so that a callback answering without end cannot fill the hub's memory."""
    response = await http.send(http.build_request("GET", url), stream=True)
    try:
        body = bytearray()
        if limit and 200 <= response.status_code < 300:
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > limit:
                    break
        return response.status_code, bytes(body)
    finally:
        await response.aclose()


def _kind(error: BaseException) -> str:
    if isinstance(error, CallbackRefused):
        return error.diagnostics
    if isinstance(error, TimeoutError | httpx2.TimeoutException):
        return "timed out"
    return type(error).__name__
