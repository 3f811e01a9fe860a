"""Which webhook callbacks the hub may call, enforced when it connects.

A callback URL comes from a subscriber, so without care the hub could be made
to call into its own network (server-side request forgery): loopback, private
ranges, link-local cloud metadata services. :class:`CallbackPolicy` refuses
those and plain http unless the settings allow them. The check runs at
subscribe time, for a helpful 400, and again on every connection through
:class:`GuardedTransport`, which resolves the host, checks every address it
resolves to, and connects to the checked address itself (keeping the Host
header and the TLS server name), so that a DNS answer that changes after the
subscribe cannot redirect the hub.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx2

from ..config import Settings
from ..errors import InvalidRequest


__all__ = [
    "CallbackPolicy",
    "CallbackRefused",
    "GuardedTransport",
    "is_public_address",
    "open_callback_client",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(InvalidRequest):
    """A callback the hub will not call (answered 400 at subscribe)."""


def is_public_address(address: Address) -> bool:
    """Whether an address is on the public internet.

    ``is_global`` excludes loopback, private, link-local (169.254.169.254, the
    usual metadata service), shared (100.64/10), reserved and documentation
    ranges; an IPv4-mapped IPv6 address is judged as the IPv4 one.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


class CallbackPolicy:
    """The callback rules in force: https only, public addresses only."""

    def __init__(self, *, allow_http: bool, allow_private: bool) -> None:
        self.allow_http = allow_http
        self.allow_private = allow_private

    def check_url(self, url: str) -> None:
        """Refuse a callback URL by its form (scheme, host)."""
        parts = urlsplit(url)
        schemes = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme.lower() not in schemes:
            raise CallbackRefused(
                f"expected an {' or '.join(schemes)} hub.callback, got a "
                f"{parts.scheme or 'relative'!r} URL"
                + ("" if self.allow_http else "; plain http is not allowed here")
            )
        if not parts.hostname:
            raise CallbackRefused("expected a hub.callback URL with a host name")

    async def check(self, url: str) -> None:
        """Refuse a callback by its form and by where its host resolves to."""
        self.check_url(url)
        parts = urlsplit(url)
        assert parts.hostname is not None, "check_url requires a host"
        await self.resolve(parts.hostname, parts.port or _default_port(parts.scheme))

    async def resolve(self, host: str, port: int) -> str:
        """The address to connect to for ``host``, checked.

        Returns ``host`` itself when private addresses are allowed (the
        connection then resolves it as usual); otherwise the first address
        it resolves to, after checking that every one of them is public.
        """
        if self.allow_private:
            return host
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = await _lookup(host, port)
        refused = [address for address in addresses if not is_public_address(address)]
        if refused:
            raise CallbackRefused(
                f"expected a hub.callback on a public address, but {host!r} "
                f"resolves to {refused[0]}, a loopback, private, link-local or "
                "otherwise non-public address"
            )
        return str(addresses[0])


class GuardedTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that applies a :class:`CallbackPolicy` per request.

    Raises :class:`CallbackRefused` before connecting to a refused address;
    redirects are not followed by the client, so every hop is a new request.
    """

    def __init__(
        self,
        policy: CallbackPolicy,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self._policy = policy
        self._transport = transport or httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        self._policy.check_url(url)
        host = request.url.host
        port = request.url.port or _default_port(request.url.scheme)
        address = await self._policy.resolve(host, port)
        if address != host:
            # Connect to the checked address; the Host header was set from the
            # original URL, and TLS verifies the original name.
            request.url = request.url.copy_with(host=address)
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._transport.aclose()


def open_callback_client(settings: Settings) -> httpx2.AsyncClient:
    """The one client the hub calls webhook callbacks with.

    No connection limit, so that callbacks that hang never queue the others
    behind them; no proxies from the environment, so that the address check
    is about the address actually connected to.
    """
    policy = CallbackPolicy(
        allow_http=settings.webhook_allow_http,
        allow_private=settings.webhook_allow_private,
    )
    return httpx2.AsyncClient(
        transport=GuardedTransport(policy),
        timeout=settings.webhook_timeout,
        limits=httpx2.Limits(max_connections=None, max_keepalive_connections=20),
        follow_redirects=False,
        trust_env=False,
    )


async def _lookup(host: str, port: int) -> list[Address]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        raise CallbackRefused(
            f"expected a hub.callback host that resolves, got {host!r}: {exc}"
        ) from exc
    addresses: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _default_port(scheme: str) -> int:
    return 443 if scheme.lower() == "https" else 80
