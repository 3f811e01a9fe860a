"""Liveness, readiness and metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import BackendUnavailable
from ..hub import Hub
from ..metrics import render


__all__ = ["healthz", "metrics", "readyz"]


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    hub: Hub = request.app.state.hub
    try:
        await hub.store.ping()
        await hub.broker.ping()
    except BackendUnavailable as error:
        return JSONResponse(
            {"status": "unavailable", "reason": error.diagnostics}, status_code=503
        )
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    body, content_type = render(request.app.state.hub)
    return Response(body, media_type=content_type)
