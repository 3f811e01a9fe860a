"""``GET {hub.url}/{topic}``: the topic's current context."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..hub import Hub


__all__ = ["get_context"]


async def get_context(request: Request) -> JSONResponse:
    hub: Hub = request.app.state.hub
    context = await hub.current_context(request.path_params["topic"])
    return JSONResponse(context)
