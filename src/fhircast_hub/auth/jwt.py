"""JWT access tokens: signature with the issuer's published keys, then claims.

Only the allowed asymmetric algorithms are accepted, so ``alg: none`` and an
HMAC token "signed" with the issuer's public key are refused before any key
is looked at. The issuer is read from the unverified payload only to choose
whose keys verify the signature; it is checked again, verified, afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
from joserfc import jws, jwt
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import Key, KeySet

from ..config import Settings
from ..errors import BackendUnavailable, Unauthorized
from .discovery import Discovery, fetch_json
from .principal import Principal, token_fingerprint


__all__ = ["JwtVerifier", "KeyCache", "unverified"]

logger = logging.getLogger("fhircast_hub.auth.jwt")


class KeyCache:
    """One issuer's signing keys (its JWKS), kept between requests.

    The keys are re-read when older than ``max_age`` and when a token names a
    key id the cache does not hold, at most once per ``refresh_interval`` so
    that tokens with made-up key ids cannot hammer the issuer. When a re-read
    fails the keys already held stay in use (a warning is logged); only an
    issuer whose keys were never read makes requests fail with 503.
    """

    def __init__(
        self,
        issuer: str,
        locate: Callable[[], Awaitable[str]],
        http: httpx2.AsyncClient,
        *,
        max_age: float,
        refresh_interval: float,
    ) -> None:
        self.issuer = issuer
        self._locate = locate
        self._http = http
        self._max_age = max_age
        self._refresh_interval = refresh_interval
        self._keys: KeySet | None = None
        self._read_at = 0.0
        self._tried_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> Key:
        """The key that signed a token, refreshing once if it is unknown."""
        async with self._lock:
            now = time.monotonic()
            if self._keys is None or now - self._read_at >= self._max_age:
                await self._refresh()
            found = self._find(kid)
            if found is not None:
                return found

            if self._tried_at is None or now - self._tried_at >= self._refresh_interval:
                await self._refresh()
                found = self._find(kid)
                if found is not None:
                    return found
        raise Unauthorized(
            f"the token's key id {kid!r} is not among the signing keys of "
            f"{self.issuer}; it was not issued by that server, or with a key it "
            "no longer publishes"
        )

    def _find(self, kid: str | None) -> Key | None:
        if self._keys is None:
            return None
        if kid is None:
            # Without a kid only an issuer with a single key is unambiguous.
            return self._keys.keys[0] if len(self._keys.keys) == 1 else None
        return next((key for key in self._keys if key.kid == kid), None)

    async def _refresh(self) -> None:
        self._tried_at = time.monotonic()
        try:
            url = await self._locate()
            document = await fetch_json(self._http, url, what="JWKS")
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (BackendUnavailable, JoseError, KeyError, TypeError, ValueError) as exc:
            if self._keys is None:
                if isinstance(exc, BackendUnavailable):
                    raise
                raise BackendUnavailable(
                    f"the signing keys of {self.issuer} are not a usable JWKS: {exc}"
                ) from exc
            logger.warning(
                "could not refresh the signing keys of %s (%s); the %d keys read "
                "before stay in use",
                self.issuer,
                exc,
                len(self._keys.keys),
            )
            return
        self._keys = keys
        self._read_at = time.monotonic()
        logger.info("read %d signing keys of %s", len(keys.keys), self.issuer)


class JwtVerifier:
    """Verifies JWT access tokens from the trusted issuers."""

    def __init__(
        self, settings: Settings, http: httpx2.AsyncClient, discovery: Discovery
    ) -> None:
        self._algorithms = list(settings.auth_algorithms)
        self._audiences: list[str | int | bool] = list(settings.auth_audiences)
        self._leeway = settings.auth_leeway
        self._discovery = discovery
        self._caches = {
            issuer: KeyCache(
                issuer,
                self._locator(issuer, settings.auth_jwks_uris.get(issuer)),
                http,
                max_age=settings.auth_jwks_max_age,
                refresh_interval=settings.auth_jwks_refresh_interval,
            )
            for issuer in settings.auth_issuers
        }

    def _locator(
        self, issuer: str, configured: str | None
    ) -> Callable[[], Awaitable[str]]:
        async def locate() -> str:
            if configured is not None:
                return configured
            uri = (await self._discovery.configuration(issuer)).jwks_uri
            if uri is None:
                raise BackendUnavailable(
                    f"the SMART configuration of {issuer} has no jwks_uri; "
                    "configure one in auth_jwks_uris"
                )
            return uri

        return locate

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; Unauthorized saying why not."""
        header, payload = unverified(token)
        alg = header.get("alg")
        if alg not in self._algorithms:
            raise Unauthorized(
                f"expected a token signed with one of {', '.join(self._algorithms)}, "
                f"got alg {alg!r}"
            )
        claimed = payload.get("iss")
        issuer = claimed.rstrip("/") if isinstance(claimed, str) else None
        cache = self._caches.get(issuer or "")
        if cache is None or issuer is None:
            raise Unauthorized(
                f"expected a token from a trusted issuer ({', '.join(self._caches)}), "
                f"got one from {claimed!r}"
            )

        kid = header.get("kid")
        key = await cache.key(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(token, key, algorithms=[alg]).claims
        except (JoseError, ValueError) as exc:
            raise Unauthorized(
                f"the token's signature does not verify with the key {kid!r} of "
                f"{issuer}: {exc}"
            ) from exc

        registry = jwt.JWTClaimsRegistry(
            leeway=self._leeway,
            iss={"essential": True, "values": [issuer, issuer + "/"]},
            aud={"essential": True, "values": self._audiences},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as exc:
            raise Unauthorized("the token has expired; get a new one") from exc
        except (InvalidClaimError, MissingClaimError) as exc:
            raise Unauthorized(_claim_problem(exc, claims, self._audiences)) from exc
        return Principal.from_claims(issuer, claims, token_fingerprint(token))


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A compact JWS's header and payload, before any signature check."""
    try:
        compact = jws.extract_compact(token.encode())
        payload = json.loads(compact.payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise Unauthorized(
            "expected a JWT access token (three base64url parts, a JSON payload), "
            "got something else"
        ) from exc
    if not isinstance(payload, dict):
        raise Unauthorized("expected a JWT whose payload is a JSON object")
    return dict(compact.headers()), payload


def _claim_problem(
    error: InvalidClaimError | MissingClaimError,
    claims: dict[str, Any],
    audiences: list[str | int | bool],
) -> str:
    if isinstance(error, MissingClaimError):
        return f"expected the token to carry the claims {error.claim}, got none"
    if error.claim == "nbf":
        return "the token is not valid yet (nbf is in the future)"
    if error.claim == "aud":
        return (
            f"expected a token for one of the audiences {audiences!r}, got one for "
            f"{claims.get('aud')!r}"
        )
    return f"the token's {error.claim} claim is not acceptable: {error.description}"
