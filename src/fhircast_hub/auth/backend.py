"""From ``Authorization: Bearer`` to a :class:`Principal`, as the settings say.

Routes call :func:`authenticate` first; it answers None when authorization is
off (``auth_mode=none``), and otherwise a principal or an error: 401 for a
missing or bad token, 503 when the authorization server cannot be reached.
The websocket endpoint takes no token: its unguessable URL is the ticket.
"""

from __future__ import annotations

import logging
from typing import Protocol

import httpx2
from starlette.requests import Request

from ..config import Settings
from ..errors import Unauthorized
from .discovery import Discovery
from .introspection import Introspector
from .jwt import JwtVerifier
from .principal import Principal


__all__ = ["TokenVerifier", "authenticate", "bearer_token", "open_verifier"]

logger = logging.getLogger("fhircast_hub.auth")


class TokenVerifier(Protocol):
    """Turns an access token into a principal.

    Raises Unauthorized for a token that is not valid, and BackendUnavailable
    when the authorization server that would tell cannot be reached.
    """

    async def verify(self, token: str) -> Principal: ...


def open_verifier(settings: Settings, http: httpx2.AsyncClient) -> TokenVerifier | None:
    """The verifier for ``auth_mode``; None when nothing is checked."""
    discovery = Discovery(http, settings.auth_jwks_max_age)
    if settings.auth_mode == "jwt":
        return JwtVerifier(settings, http, discovery)
    if settings.auth_mode == "introspection":
        return Introspector(settings, http, discovery)
    logger.warning(
        "authorization is off (auth_mode=none): anyone who reaches the hub may "
        "subscribe, publish and read every topic; set FHIRCAST_HUB_AUTH_MODE to "
        "jwt or introspection for anything but a local run"
    )
    return None


async def authenticate(request: Request) -> Principal | None:
    """The caller's principal; None when authorization is off."""
    verifier: TokenVerifier | None = request.app.state.token_verifier
    if verifier is None:
        return None
    principal = await verifier.verify(
        bearer_token(request.headers.get("authorization"))
    )
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "token %s of %s accepted for %s",
            principal.fingerprint,
            principal.client_id or principal.subject,
            request.url.path,
        )
    return principal


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header value."""
    if not header:
        raise Unauthorized(
            "expected an 'Authorization: Bearer <access token>' header, got none"
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        # A bare token would land in "scheme": name only schemes that look like one.
        shown = repr(scheme) if scheme.isalpha() and len(scheme) <= 16 else "another"
        raise Unauthorized(
            "expected an 'Authorization: Bearer <access token>' header, got "
            f"{shown} scheme" + ("" if token.strip() else " and no token")
        )
    return token.strip()
