"""``GET {hub.url}/{topic}``: the topic's current context."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from .. import stu2
from ..auth.backend import authenticate
from ..auth.scopes import authorize_context_read
from ..hub import Hub


__all__ = ["get_context", "get_context_stu2"]


async def get_context(request: Request) -> JSONResponse:
    return JSONResponse(await _current_context(request))


async def get_context_stu2(request: Request) -> JSONResponse:
    """The STU2 shape: the current context array alone."""
    return JSONResponse(stu2.current_context(await _current_context(request)))


async def _current_context(request: Request) -> dict[str, Any]:
    hub: Hub = request.app.state.hub
    topic = request.path_params["topic"]
    principal = await authenticate(request)
    if principal is not None:
        authorize_context_read(principal, topic)
    return await hub.current_context(topic)
