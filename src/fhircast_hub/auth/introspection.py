"""RFC 7662 token introspection, for opaque tokens (or to honour revocation).

The hub asks the issuer's introspection endpoint, authenticated with its own
client credentials (HTTP Basic), whether a token is active, and caches active
answers by a hash of the token, never past the token's ``exp``. The hub fails
closed: an endpoint that cannot be reached makes the request fail with 503.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any

import httpx2

from ..config import Settings
from ..errors import BackendUnavailable, Unauthorized
from .discovery import Discovery
from .jwt import unverified
from .principal import Principal, token_fingerprint


__all__ = ["AnswerCache", "Introspector"]

logger = logging.getLogger("fhircast_hub.auth.introspection")


class AnswerCache:
    """Principals by token hash, each until its own deadline; least recent out."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def get(self, key: str) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.time():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, principal: Principal, until: float) -> None:
        self._entries[key] = (until, principal)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class Introspector:
    """Checks tokens at the trusted issuers' introspection endpoints."""

    def __init__(
        self, settings: Settings, http: httpx2.AsyncClient, discovery: Discovery
    ) -> None:
        assert settings.auth_client_id is not None, "Settings checks credentials"
        assert settings.auth_client_secret is not None, "Settings checks credentials"
        self._http = http
        self._discovery = discovery
        self._issuers = list(settings.auth_issuers)
        self._endpoints = dict(settings.auth_introspection_endpoints)
        self._credentials = (
            settings.auth_client_id,
            settings.auth_client_secret.get_secret_value(),
        )
        self._audiences = set(settings.auth_audiences)
        self._leeway = settings.auth_leeway
        self._cache_seconds = settings.auth_cache_seconds
        self.cache = AnswerCache(settings.auth_cache_size)

    async def verify(self, token: str) -> Principal:
        """The principal of an active token; Unauthorized or 503 otherwise."""
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self.cache.get(key)
        if cached is not None:
            return cached

        fingerprint = token_fingerprint(token)
        unreachable: BackendUnavailable | None = None
        for issuer in self._issuers_for(token):
            try:
                answer = await self._ask(issuer, token)
            except BackendUnavailable as error:
                logger.warning(
                    "introspection of token %s at %s failed: %s",
                    fingerprint,
                    issuer,
                    error.diagnostics,
                )
                unreachable = error
                continue
            if answer.get("active") is True:
                principal = self._accept(issuer, answer, fingerprint)
                self._remember(key, principal)
                return principal

        if unreachable is not None:
            raise unreachable
        raise Unauthorized(
            "the authorization server says this token is not active (expired, "
            "revoked, or never issued); get a new one"
        )

    def _issuers_for(self, token: str) -> list[str]:
        """Ask only the issuer a JWT names, so a token goes to no other server."""
        try:
            claimed = unverified(token)[1].get("iss")
        except Unauthorized:
            return self._issuers
        issuer = claimed.rstrip("/") if isinstance(claimed, str) else None
        return [issuer] if issuer in self._issuers else self._issuers

    async def _ask(self, issuer: str, token: str) -> dict[str, Any]:
        endpoint = self._endpoints.get(issuer)
        if endpoint is None:
            endpoint = (
                await self._discovery.configuration(issuer)
            ).introspection_endpoint
        if endpoint is None:
            raise BackendUnavailable(
                f"the SMART configuration of {issuer} has no introspection_endpoint; "
                "configure one in auth_introspection_endpoints"
            )
        try:
            response = await self._http.post(
                endpoint,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._credentials,
                headers={"Accept": "application/json"},
            )
            response.raise_for_status()
            answer = response.json()
        except (httpx2.HTTPError, ValueError) as exc:
            raise BackendUnavailable(
                f"the introspection endpoint {endpoint} could not answer: {exc}"
            ) from exc
        if not isinstance(answer, dict):
            raise BackendUnavailable(
                f"expected a JSON object from {endpoint}, got {type(answer).__name__}"
            )
        return answer

    def _accept(
        self, issuer: str, answer: dict[str, Any], fingerprint: str
    ) -> Principal:
        """Check the answer's own claims: the server vouched, but for whom and when?"""
        now = time.time()
        iss = answer.get("iss")
        if iss is not None and (not isinstance(iss, str) or iss.rstrip("/") != issuer):
            raise Unauthorized(
                f"expected a token issued by {issuer}, its introspection says {iss!r}"
            )
        exp = answer.get("exp")
        if isinstance(exp, int | float) and exp <= now - self._leeway:
            raise Unauthorized("the token has expired; get a new one")
        nbf = answer.get("nbf")
        if isinstance(nbf, int | float) and nbf > now + self._leeway:
            raise Unauthorized("the token is not valid yet (nbf is in the future)")
        aud = answer.get("aud")
        audiences = {aud} if isinstance(aud, str) else set(_strings(aud))
        if self._audiences and aud is not None and not audiences & self._audiences:
            raise Unauthorized(
                f"expected a token for one of the audiences "
                f"{sorted(self._audiences)!r}, got one for {aud!r}"
            )
        return Principal.from_claims(issuer, answer, fingerprint)

    def _remember(self, key: str, principal: Principal) -> None:
        until = time.time() + self._cache_seconds
        if principal.expires_at is not None:
            until = min(until, principal.expires_at)
        if until > time.time():
            self.cache.put(key, principal, until)


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]
