"""The hub's settings: one class, read from ``FHIRCAST_HUB_*`` variables.

The command line mirrors these fields one to one (see ``cli.py``); the table of
defaults lives in ``docs/configuration.md``.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


__all__ = ["Settings"]


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
    log_level: str = Field("info", description="Logging level of the hub's loggers.")
