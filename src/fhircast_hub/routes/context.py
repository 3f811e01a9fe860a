"""``GET {hub.url}/{topic}``: the topic's current context."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..auth.backend import authenticate
from ..auth.scopes import authorize_context_read
from ..hub import Hub


__all__ = ["get_context"]


async def get_context(request: Request) -> JSONResponse:
    hub: Hub = request.app.state.hub
    topic = request.path_params["topic"]
    principal = await authenticate(request)
    if principal is not None:
        authorize_context_read(principal, topic)
    context = await hub.current_context(topic)
    return JSONResponse(context)
