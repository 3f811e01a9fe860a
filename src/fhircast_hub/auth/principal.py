"""The caller of a request, as its access token describes it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, TypeGuard

from ..errors import Unauthorized
from .scopes import FhircastScope, parse_scopes


__all__ = ["Principal", "token_fingerprint"]


@dataclass(frozen=True)
class Principal:
    """What the rest of the hub knows of a verified token.

    ``topic`` is the ``hub.topic`` the token was issued for (None: any topic);
    ``expires_at`` is the token's ``exp`` (None: the issuer gave none).
    """

    issuer: str
    subject: str | None
    client_id: str | None
    scopes: tuple[FhircastScope, ...]
    topic: str | None
    expires_at: float | None
    fingerprint: str

    @classmethod
    def from_claims(
        cls, issuer: str, claims: dict[str, Any], fingerprint: str
    ) -> Principal:
        """Read a principal from JWT claims or an introspection answer."""
        scope = claims.get("scope", claims.get("scp", ""))
        topic = claims.get("hub.topic")
        # A topic claim that is there but unusable binds the token to no
        # topic; reading it as "any topic" would fail open.
        if topic is not None and (not isinstance(topic, str) or not topic):
            raise Unauthorized(
                "expected the token's hub.topic claim to be a non-empty string, "
                f"got {type(topic).__name__} {str(topic)[:40]!r}"
            )
        return cls(
            issuer=issuer,
            subject=_string(claims.get("sub")),
            client_id=_string(claims.get("client_id", claims.get("azp"))),
            scopes=parse_scopes(scope),
            topic=topic,
            expires_at=_timestamp(claims.get("exp")),
            fingerprint=fingerprint,
        )


def token_fingerprint(token: str) -> str:
    """A short hash that names a token in logs and caches, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _timestamp(value: Any) -> float | None:
    """A NumericDate as a float; None when absent or past any float (no cap)."""
    if not _number(value):
        return None
    try:
        return float(value)
    except OverflowError:
        return None
