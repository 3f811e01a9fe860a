"""The development authorization server on loopback, and tokens good and bad."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx2
import uvicorn
from examples.dev_auth_server import DevAuthServer, new_signing_key
from joserfc.jwk import RSAKey


__all__ = [
    "AUDIENCE",
    "RunningAuthServer",
    "auth_settings",
    "new_topic",
    "patient",
    "start_auth_server",
]

AUDIENCE = "http://fhir.example.org/r4"


def auth_settings(mode: str, issuer: str) -> dict[str, Any]:
    settings = {"auth_mode": mode, "auth_issuers": issuer, "auth_audiences": AUDIENCE}
    if mode == "introspection":
        settings |= {"auth_client_id": "hub", "auth_client_secret": "hub-secret"}
    return settings


def new_topic() -> str:
    return f"topic-{uuid.uuid4()}"


def patient(patient_id: str) -> list[dict[str, Any]]:
    return [
        {"key": "patient", "resource": {"resourceType": "Patient", "id": patient_id}}
    ]


@dataclass
class RunningAuthServer:
    """A DevAuthServer serving on loopback."""

    dev: DevAuthServer
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def issuer(self) -> str:
        return self.dev.issuer

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 10)

    async def token(
        self,
        scope: str,
        topic: str | None = None,
        *,
        expires_in: int | None = None,
        token_format: str = "jwt",
    ) -> str:
        """A token from the token endpoint, as an app would get it."""
        form = {"grant_type": "client_credentials", "scope": scope}
        if topic is not None:
            form["hub.topic"] = topic
        if expires_in is not None:
            form["expires_in"] = str(expires_in)
        form["token_format"] = token_format
        async with httpx2.AsyncClient() as http:
            response = await http.post(
                f"{self.issuer}/token", data=form, auth=("demo-app", "demo-secret")
            )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        assert answer["hub.url"] == self.dev.hub_url
        token: str = answer["access_token"]
        return token

    async def revoke(self, token: str) -> None:
        async with httpx2.AsyncClient() as http:
            response = await http.post(
                f"{self.issuer}/revoke",
                data={"token": token},
                auth=("hub", "hub-secret"),
            )
        response.raise_for_status()

    # Tokens made by hand, for the ways a token can be wrong.

    def signed(
        self, topic: str, scope: str, key: RSAKey | None = None, **claims: Any
    ) -> str:
        return self.dev.sign({**self.dev.claims(scope, topic=topic), **claims}, key)

    def unsigned(self, topic: str, scope: str) -> str:
        """alg none: a payload anyone could have written."""
        return _compact(
            {"alg": "none", "typ": "JWT"}, self.dev.claims(scope, topic=topic), b""
        )

    def hmac_with_public_key(self, topic: str, scope: str) -> str:
        """HS256 keyed with the issuer's public key, which anyone can download."""
        secret = self.dev.key.as_pem(private=False)
        header = {"alg": "HS256", "typ": "JWT", "kid": self.dev.key.kid}
        claims = self.dev.claims(scope, topic=topic)
        signing_input = _compact(header, claims, b"").rsplit(".", 1)[0]
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    def tampered(self, topic: str, scope: str) -> str:
        """A good token whose payload was changed after signing (more scopes)."""
        token = self.signed(topic, scope)
        header, _, signature = token.split(".")
        claims = {**self.dev.claims(scope, topic=topic), "scope": "fhircast/*.*"}
        return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"

    def unknown_key(self, topic: str, scope: str) -> str:
        return self.signed(topic, scope, key=new_signing_key())


async def start_auth_server(port: int, hub_url: str) -> RunningAuthServer:
    dev = DevAuthServer(f"http://127.0.0.1:{port}", hub_url=hub_url, audience=AUDIENCE)
    config = uvicorn.Config(dev.app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the authorization server stopped before it started")
        await asyncio.sleep(0.01)
    return RunningAuthServer(dev, server, task)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    return (
        ".".join(_b64(json.dumps(part).encode()) for part in (header, claims))
        + "."
        + _b64(signature)
    )
