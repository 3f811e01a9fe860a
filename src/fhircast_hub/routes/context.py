"""``GET {hub.url}/{topic}``: the topic's current context."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from .. import stu2
from ..hub import Hub


__all__ = ["get_context", "get_context_stu2"]


async def get_context(request: Request) -> JSONResponse:
    hub: Hub = request.app.state.hub
    context = await hub.current_context(request.path_params["topic"])
    return JSONResponse(context)


async def get_context_stu2(request: Request) -> JSONResponse:
    """The STU2 shape: the current context array alone."""
    hub: Hub = request.app.state.hub
    context = await hub.current_context(request.path_params["topic"])
    return JSONResponse(stu2.current_context(context))
