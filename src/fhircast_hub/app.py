"""The Starlette application: routes, error rendering and the hub's lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import httpx2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from .auth.backend import open_verifier
from .backend import open_backend
from .channels.callbacks import open_callback_client
from .config import Settings
from .errors import HubError, operation_outcome
from .hub import Hub
from .routes.context import get_context, get_context_stu2
from .routes.health import healthz, metrics, readyz
from .routes.hub import post_hub, post_hub_stu2
from .routes.live import live_page
from .routes.websocket import websocket_endpoint
from .routes.wellknown import stu2_configuration, stu3_configuration


__all__ = ["create_app"]

logger = logging.getLogger("fhircast_hub.app")

STU3_PATHS = ("/fhircast/STU3", "/api/hub")
STU2_PATH = "/fhircast/STU2"


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the hub application; the store and broker open in its lifespan."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store, broker = await open_backend(settings)
        async with open_callback_client(settings) as callbacks:
            hub = Hub(settings, store, broker, http=callbacks)
            await hub.start()
            app.state.hub = hub
            # Authorization servers get a client of their own: the callbacks'
            # client refuses private addresses, where such servers often are.
            http = httpx2.AsyncClient(timeout=settings.auth_http_timeout)
            app.state.token_verifier = open_verifier(settings, http)
            logger.info("hub ready")
            try:
                yield
            finally:
                await hub.stop()
                await http.aclose()
                logger.info("hub stopped")

    # Topics may hold "/" (sent raw or as %2F): the path converter keeps them
    # readable at {hub.url}/{topic}.
    routes: list[Route | WebSocketRoute] = [
        Route("/.well-known/fhircast-configuration", stu3_configuration),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/live", live_page),
        WebSocketRoute("/ws/{endpoint}", websocket_endpoint),
    ]
    for path in STU3_PATHS:
        routes += [
            Route(path, post_hub, methods=["POST"]),
            Route(f"{path}/.well-known/fhircast-configuration", stu3_configuration),
            Route(f"{path}/{{topic:path}}", get_context, methods=["GET"]),
            Route(f"{path}/{{topic:path}}", post_hub, methods=["POST"]),
        ]
    routes += [
        Route(STU2_PATH, post_hub_stu2, methods=["POST"]),
        Route(f"{STU2_PATH}/.well-known/fhircast-configuration", stu2_configuration),
        Route(f"{STU2_PATH}/{{topic:path}}", get_context_stu2, methods=["GET"]),
        Route(f"{STU2_PATH}/{{topic:path}}", post_hub_stu2, methods=["POST"]),
    ]

    origins = [origin.strip() for origin in settings.cors_allow_origins.split(",")]
    cors = Middleware(
        CORSMiddleware,
        allow_origins=[origin for origin in origins if origin],
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
    )
    return Starlette(
        routes=routes,
        middleware=[cors],
        lifespan=lifespan,
        exception_handlers={
            HubError: _hub_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
    )


async def _hub_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HubError), "registered for HubError only"
    return JSONResponse(
        error.to_operation_outcome(),
        status_code=error.status_code,
        headers=error.headers(),
    )


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    """The router's own 404 and 405, as OperationOutcomes like every error."""
    assert isinstance(error, HTTPException), "registered for HTTPException only"
    arrived = f"{request.method} {request.url.path}"
    if error.status_code == 404:
        diagnostics = f"expected a path the hub serves, got {arrived}"
        code = "not-found"
    elif error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "another method")
        diagnostics = f"expected {allowed} at this path, got {arrived}"
        code = "not-supported"
    else:
        diagnostics = f"{error.detail} ({arrived})"
        code = "processing"
    return JSONResponse(
        operation_outcome(diagnostics, code=code),
        status_code=error.status_code,
        headers=error.headers,
    )


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    logger.error("request to %s failed", request.url.path, exc_info=error)
    outcome = operation_outcome(
        "the hub failed to handle this request", code="exception"
    )
    return JSONResponse(outcome, status_code=500)
