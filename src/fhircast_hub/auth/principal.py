"""The caller of a request, as its access token describes it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, TypeGuard

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
        exp = claims.get("exp")
        return cls(
            issuer=issuer,
            subject=_string(claims.get("sub")),
            client_id=_string(claims.get("client_id", claims.get("azp"))),
            scopes=parse_scopes(scope),
            topic=topic if isinstance(topic, str) and topic else None,
            expires_at=float(exp) if _number(exp) else None,
            fingerprint=fingerprint,
        )


def token_fingerprint(token: str) -> str:
    """A short hash that names a token in logs and caches, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
