"""A development authorization server for trying the hub's authorization.

It is for demos and tests only: it signs whatever scopes a known client asks
for, keeps its key in memory and forgets everything when it stops. Run it
next to the hub (docs/authorization.md has the commands)::

    python examples/dev_auth_server.py --port 9000 \\
        --hub-url http://127.0.0.1:8000/fhircast/STU3

Endpoints, under the issuer URL (``http://127.0.0.1:9000``):

- ``GET /.well-known/smart-configuration``: where the others are;
- ``GET /jwks``: the public signing keys;
- ``POST /token``: the client-credentials grant, with ``scope``, optional
  ``hub.topic`` (a fresh topic when absent), ``expires_in`` (shorter
  lifetimes, for trying expiry) and ``token_format`` (``jwt`` or ``opaque``);
  the answer carries ``hub.url`` and ``hub.topic`` as SMART launches do;
- ``POST /introspect``: RFC 7662, for clients that authenticate;
- ``POST /revoke``: RFC 7009, so that introspection answers ``active: false``.

Clients authenticate with HTTP Basic or ``client_id``/``client_secret`` form
fields.
"""

from __future__ import annotations

import argparse
import base64
import secrets
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


__all__ = ["DEFAULT_CLIENTS", "DevAuthServer", "main"]

DEFAULT_CLIENTS = {"hub": "hub-secret", "demo-app": "demo-secret"}


class DevAuthServer:
    """The server's state (keys, opaque tokens, revocations) and its app."""

    def __init__(
        self,
        issuer: str,
        *,
        hub_url: str,
        audience: str | None = None,
        clients: dict[str, str] | None = None,
        token_lifetime: int = 3600,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.hub_url = hub_url
        self.audience = audience or hub_url
        self.clients = dict(DEFAULT_CLIENTS if clients is None else clients)
        self.token_lifetime = token_lifetime
        self.key = new_signing_key()
        self.published: list[RSAKey] = [self.key]
        self.opaque: dict[str, dict[str, Any]] = {}
        self.revoked: set[str] = set()
        self.requests: dict[str, int] = {"jwks": 0, "introspect": 0}
        self.app = Starlette(
            routes=[
                Route("/.well-known/smart-configuration", self._configuration),
                Route("/jwks", self._jwks),
                Route("/token", self._token, methods=["POST"]),
                Route("/introspect", self._introspect, methods=["POST"]),
                Route("/revoke", self._revoke, methods=["POST"]),
            ]
        )

    # Tokens.

    def claims(
        self,
        scope: str,
        *,
        topic: str | None,
        client_id: str = "demo-app",
        lifetime: int | None = None,
    ) -> dict[str, Any]:
        """The claims of a new access token."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client_id,
            "client_id": client_id,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + (lifetime or self.token_lifetime),
            "jti": str(uuid.uuid4()),
            "scope": scope,
            "hub.url": self.hub_url,
        }
        if topic is not None:
            claims["hub.topic"] = topic
        return claims

    def sign(self, claims: dict[str, Any], key: RSAKey | None = None) -> str:
        """A JWT of ``claims`` signed RS256, with the key's id in the header."""
        key = key or self.key
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)

    def rotate(self) -> RSAKey:
        """Sign with a new key from now on, publishing it beside the old ones."""
        self.key = new_signing_key()
        self.published.append(self.key)
        return self.key

    def active_claims(self, token: str) -> dict[str, Any] | None:
        """What introspection says of a token: its claims, or None if inactive."""
        claims = self.opaque.get(token) or self._verified_claims(token)
        if claims is None or claims.get("jti") in self.revoked:
            return None
        now = time.time()
        if claims["exp"] <= now or claims.get("nbf", 0) > now:
            return None
        return claims

    def _verified_claims(self, token: str) -> dict[str, Any] | None:
        try:
            kid = jws.extract_compact(token.encode()).headers().get("kid")
        except (JoseError, ValueError):
            return None
        key = next((key for key in self.published if key.kid == kid), None)
        if key is None:
            return None
        try:
            return jwt.decode(token, key, algorithms=["RS256"]).claims
        except (JoseError, ValueError):
            return None

    # Endpoints.

    async def _configuration(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "jwks_uri": f"{self.issuer}/jwks",
                "token_endpoint": f"{self.issuer}/token",
                "introspection_endpoint": f"{self.issuer}/introspect",
                "revocation_endpoint": f"{self.issuer}/revoke",
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "scopes_supported": ["fhircast/*.read", "fhircast/*.write"],
                "capabilities": ["client-confidential-symmetric"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _jwks(self, request: Request) -> JSONResponse:
        self.requests["jwks"] += 1
        return JSONResponse(
            {"keys": [key.as_dict(private=False) for key in self.published]}
        )

    async def _token(self, request: Request) -> JSONResponse:
        form = await _form(request)
        client_id = self._client(request, form)
        if client_id is None:
            return _oauth_error("invalid_client", 401)
        if form.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type")

        scope = str(form.get("scope") or "")
        topic = str(form.get("hub.topic") or secrets.token_urlsafe(16))
        lifetime = self.token_lifetime
        if str(form.get("expires_in") or "").isdigit():
            lifetime = max(1, min(lifetime, int(str(form["expires_in"]))))
        claims = self.claims(scope, topic=topic, client_id=client_id, lifetime=lifetime)

        if form.get("token_format") == "opaque":
            token = secrets.token_urlsafe(32)
            self.opaque[token] = claims
        else:
            token = self.sign(claims)
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": lifetime,
                "scope": scope,
                "hub.url": self.hub_url,
                "hub.topic": topic,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def _introspect(self, request: Request) -> JSONResponse:
        self.requests["introspect"] += 1
        form = await _form(request)
        if self._client(request, form) is None:
            return _oauth_error("invalid_client", 401)
        claims = self.active_claims(str(form.get("token") or ""))
        if claims is None:
            return JSONResponse({"active": False})
        return JSONResponse({"active": True, "token_type": "Bearer", **claims})

    async def _revoke(self, request: Request) -> JSONResponse:
        form = await _form(request)
        if self._client(request, form) is None:
            return _oauth_error("invalid_client", 401)
        claims = self.active_claims(str(form.get("token") or ""))
        if claims is not None:
            self.revoked.add(claims["jti"])
        return JSONResponse({})

    def _client(self, request: Request, form: dict[str, str]) -> str | None:
        """The authenticated client's id, from HTTP Basic or the form."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
            except ValueError:
                return None
        expected = self.clients.get(str(client_id))
        if expected is None or not secrets.compare_digest(expected, str(secret)):
            return None
        return str(client_id)


def new_signing_key() -> RSAKey:
    key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"})
    key.ensure_kid()
    return key


async def _form(request: Request) -> dict[str, str]:
    """A url-encoded form body (parsed here: Starlette's parser needs an extra)."""
    return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))


def _oauth_error(error: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error}, status_code=status)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--issuer", help="default: http://HOST:PORT")
    parser.add_argument(
        "--hub-url",
        default="http://127.0.0.1:8000/fhircast/STU3",
        help="the hub.url put in tokens",
    )
    parser.add_argument("--audience", help="the aud of tokens; default: the hub URL")
    parser.add_argument(
        "--client",
        action="append",
        metavar="ID:SECRET",
        help=f"a client that may get tokens and introspect (default: "
        f"{', '.join(f'{k}:{v}' for k, v in DEFAULT_CLIENTS.items())})",
    )
    arguments = parser.parse_args(argv)
    clients = None
    if arguments.client:
        clients = dict(item.split(":", 1) for item in arguments.client)
    server = DevAuthServer(
        arguments.issuer or f"http://{arguments.host}:{arguments.port}",
        hub_url=arguments.hub_url,
        audience=arguments.audience,
        clients=clients,
    )
    issuer = server.issuer
    print(
        f"development authorization server (never for real use) at {issuer}\n"
        f"  token:         POST {issuer}/token (grant_type=client_credentials, "
        "scope, hub.topic)\n"
        f"  introspection: POST {issuer}/introspect\n"
        f"  discovery:     {issuer}/.well-known/smart-configuration\n"
        f"  clients:       {', '.join(server.clients)}",
        flush=True,
    )
    uvicorn.run(server.app, host=arguments.host, port=arguments.port)


if __name__ == "__main__":
    main()
