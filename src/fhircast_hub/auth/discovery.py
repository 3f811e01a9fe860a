"""Each trusted issuer's ``.well-known/smart-configuration``, fetched and cached."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx2

from ..errors import BackendUnavailable


__all__ = ["Discovery", "SmartConfiguration", "fetch_json"]

logger = logging.getLogger("fhircast_hub.auth.discovery")


@dataclass(frozen=True)
class SmartConfiguration:
    """The parts of an issuer's SMART configuration the hub uses."""

    issuer: str
    jwks_uri: str | None
    introspection_endpoint: str | None


class Discovery:
    """Reads ``{issuer}/.well-known/smart-configuration``, at most once per max age.

    A failed read is not cached: the next request tries again. Concurrent
    requests for one issuer share one read.
    """

    def __init__(self, http: httpx2.AsyncClient, max_age: float) -> None:
        self._http = http
        self._max_age = max_age
        self._cache: dict[str, tuple[float, SmartConfiguration]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def configuration(self, issuer: str) -> SmartConfiguration:
        """The issuer's configuration; BackendUnavailable when it cannot be read."""
        async with self._locks.setdefault(issuer, asyncio.Lock()):
            cached = self._cache.get(issuer)
            if cached is not None and time.monotonic() - cached[0] < self._max_age:
                return cached[1]

            url = f"{issuer}/.well-known/smart-configuration"
            document = await fetch_json(self._http, url, what="SMART configuration")
            configuration = SmartConfiguration(
                issuer=issuer,
                jwks_uri=_url(document.get("jwks_uri")),
                introspection_endpoint=_url(document.get("introspection_endpoint")),
            )
            self._cache[issuer] = (time.monotonic(), configuration)
            logger.info("read the SMART configuration of %s", issuer)
            return configuration


async def fetch_json(
    http: httpx2.AsyncClient, url: str, *, what: str
) -> dict[str, Any]:
    """GET a JSON object; any failure is a BackendUnavailable naming ``what``."""
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
    except (httpx2.HTTPError, ValueError) as exc:
        raise BackendUnavailable(
            f"could not read the {what} at {url}: {exc}; the hub cannot check "
            "tokens until it can"
        ) from exc
    if not isinstance(document, dict):
        raise BackendUnavailable(
            f"expected a JSON object as the {what} at {url}, "
            f"got {type(document).__name__}"
        )
    return document


def _url(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
