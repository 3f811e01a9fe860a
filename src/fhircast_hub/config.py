"""The hub's settings: one class, read from ``FHIRCAST_HUB_*`` variables.

The command line mirrors these fields one to one (see ``cli.py``); the table of
defaults lives in ``docs/configuration.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


__all__ = ["ALGORITHMS_ALLOWED", "Settings"]

# Asymmetric signatures only: "none" proves nothing, and an HMAC secret would
# be the issuer's public key, which anyone can download and sign with.
ALGORITHMS_ALLOWED = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
_PAIR = re.compile(r"^(?P<issuer>.+?)=(?P<url>https?://.+)$")


class Settings(BaseSettings):
    """Everything an operator can set, validated once at start-up."""

    model_config = SettingsConfigDict(env_prefix="FHIRCAST_HUB_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on.")
    public_url: str | None = Field(
        None,
        description="Base URL clients reach the hub at, e.g. https://hub.example.org; "
        "websocket endpoints are built from it. Unset: taken from each request.",
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Proxies whose X-Forwarded-* headers are trusted (comma list).",
    )
    cors_allow_origins: str = Field(
        "*",
        description="Origins of browser apps allowed to call the hub's HTTP "
        "endpoints (comma list; * for any). Requests are authorized by bearer "
        "token, never by origin.",
    )
    lease_default: int = Field(
        3600, gt=0, description="Lease in seconds when a subscriber asks for none."
    )
    lease_max: int = Field(86400, gt=0, description="Longest lease granted, seconds.")
    ack_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds to wait for a websocket acknowledgement before a "
        "SyncError is sent and the silent subscriber is unsubscribed.",
    )
    max_body_bytes: int = Field(
        1_048_576, gt=0, description="Largest HTTP request body accepted (413 above)."
    )
    max_frame_bytes: int = Field(
        65_536, gt=0, description="Largest websocket frame accepted from a subscriber."
    )
    keepalive_interval: float = Field(
        20.0,
        gt=0,
        description="Seconds between websocket pings; a peer that does not answer "
        "within the same time is dropped.",
    )
    send_queue_size: int = Field(
        1000,
        gt=0,
        description="Events waiting for one websocket before it counts as stuck "
        "and is closed.",
    )
    duplicate_window: float = Field(
        600.0,
        ge=0,
        description="Seconds during which a repeated event id on a topic is "
        "answered 202 and not delivered again.",
    )
    ira_mode: bool = Field(
        False,
        description="Enforce the IHE IRA hub rules: subscriber.name and the "
        "DiagnosticReport events required in every subscription, "
        "DiagnosticReport-open needs report, patient and study, and the hub "
        "originates no open or close events.",
    )
    webhook_allow_http: bool = Field(
        False,
        description="Accept plain-http STU2 webhook callbacks (https only when off); "
        "for local demos and tests.",
    )
    webhook_allow_private: bool = Field(
        False,
        description="Accept STU2 webhook callbacks on loopback, private, link-local "
        "and other non-public addresses (checked at subscribe and at connect).",
    )
    webhook_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a webhook callback has to answer a verification, a "
        "denial or one delivery attempt.",
    )
    webhook_retries: int = Field(
        3,
        ge=0,
        description="Further attempts after a webhook delivery fails with 5xx or a "
        "network error; then a syncerror is sent.",
    )
    webhook_backoff: float = Field(
        1.0,
        ge=0,
        description="Seconds before the first webhook retry; doubled for each next.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis shared by every hub process: redis://, rediss://, "
        "unix:// or redis+sentinel://host:port[,host:port]/service[/db]. "
        "Unset: the embedded memory backend (one process).",
    )
    connection_claim_ttl: float = Field(
        15.0,
        gt=0,
        description="Seconds a process's claim on a websocket endpoint lives "
        "unless renewed (every third of it); after a process dies, its "
        "subscribers can reconnect elsewhere once the claim lapses.",
    )
    log_level: str = Field("info", description="Logging level of the hub's loggers.")
    auth_mode: Literal["none", "jwt", "introspection"] = Field(
        "none",
        description="How bearer tokens are checked: none (everything is allowed; "
        "for local runs), jwt (signed access tokens) or introspection (RFC 7662).",
    )
    auth_issuers: Annotated[list[str], NoDecode] = Field(
        [],
        description="Trusted authorization servers, by issuer URL (comma list).",
    )
    auth_audiences: Annotated[list[str], NoDecode] = Field(
        [],
        description="Accepted token audiences (comma list), usually the FHIR "
        "server's base URL; required in jwt mode.",
    )
    auth_algorithms: Annotated[list[str], NoDecode] = Field(
        ["RS256", "RS384", "ES256", "ES384"],
        description="JWT signature algorithms accepted (comma list); asymmetric "
        "ones only.",
    )
    auth_jwks_uris: Annotated[dict[str, str], NoDecode] = Field(
        {},
        description="JWKS URL per issuer, as ISSUER=URL pairs (comma list); an "
        "issuer not listed is looked up in its .well-known/smart-configuration.",
    )
    auth_introspection_endpoints: Annotated[dict[str, str], NoDecode] = Field(
        {},
        description="Introspection URL per issuer, as ISSUER=URL pairs (comma "
        "list); an issuer not listed is looked up in its smart-configuration.",
    )
    auth_client_id: str | None = Field(
        None, description="The hub's client id at the introspection endpoints."
    )
    auth_client_secret: SecretStr | None = Field(
        None, description="The hub's client secret at the introspection endpoints."
    )
    auth_leeway: int = Field(
        30, ge=0, le=300, description="Clock skew allowed on exp and nbf, seconds."
    )
    auth_jwks_max_age: float = Field(
        3600.0, gt=0, description="Seconds before cached signing keys are re-read."
    )
    auth_jwks_refresh_interval: float = Field(
        30.0,
        ge=0,
        description="Least seconds between two key refreshes caused by an "
        "unknown key id (kid).",
    )
    auth_cache_size: int = Field(
        10_000, gt=0, description="Introspection answers kept in the cache."
    )
    auth_cache_seconds: float = Field(
        300.0,
        ge=0,
        description="Longest time an introspection answer is reused (never past "
        "the token's exp), so that a revoked token is noticed.",
    )
    auth_http_timeout: float = Field(
        5.0,
        gt=0,
        description="Seconds to wait for an authorization server before the "
        "request fails closed (503).",
    )

    @field_validator("auth_issuers", "auth_audiences", "auth_algorithms", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("auth_jwks_uris", "auth_introspection_endpoints", mode="before")
    @classmethod
    def _issuer_pairs(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("{"):
            return json.loads(value)
        pairs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            match = _PAIR.match(item)
            if match is None:
                raise ValueError(
                    f"expected ISSUER=URL with an http(s) URL, got {item!r}"
                )
            pairs[match["issuer"].rstrip("/")] = match["url"]
        return pairs

    @field_validator("auth_issuers")
    @classmethod
    def _issuer_urls(cls, value: list[str]) -> list[str]:
        return [issuer.rstrip("/") for issuer in value]

    @field_validator("auth_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        refused = [name for name in value if name not in ALGORITHMS_ALLOWED]
        if refused:
            raise ValueError(
                f"expected algorithms among {sorted(ALGORITHMS_ALLOWED)}, got "
                f"{refused!r}; none and HMAC (HS*) are never accepted"
            )
        if not value:
            raise ValueError("expected at least one signature algorithm")
        return value

    @model_validator(mode="after")
    def _auth_complete(self) -> Self:
        if self.auth_mode == "none":
            return self
        if not self.auth_issuers:
            raise ValueError(
                f"auth_mode {self.auth_mode!r} needs at least one trusted issuer "
                "in auth_issuers"
            )
        if self.auth_mode == "jwt" and not self.auth_audiences:
            raise ValueError(
                "auth_mode 'jwt' needs auth_audiences: the token audiences to "
                "accept, usually the FHIR server's base URL"
            )
        if self.auth_mode == "introspection" and not (
            self.auth_client_id and self.auth_client_secret
        ):
            raise ValueError(
                "auth_mode 'introspection' needs auth_client_id and "
                "auth_client_secret: the hub's credentials at the introspection "
                "endpoint"
            )
        return self


def unknown_variables(environment: Mapping[str, str]) -> list[str]:
    """``FHIRCAST_HUB_*`` variables that name no setting (a typo is ignored
    silently by the settings class, so the command line reports them)."""
    known = {f"FHIRCAST_HUB_{name.upper()}" for name in Settings.model_fields}
    return sorted(
        name
        for name in environment
        if name.upper().startswith("FHIRCAST_HUB_") and name.upper() not in known
    )
