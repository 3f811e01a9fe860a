"""``/ws/{endpoint}``: the websocket channel of one subscription."""

from __future__ import annotations

import json

from starlette.responses import Response
from starlette.websockets import WebSocket

from ..errors import HubError
from ..hub import Hub


__all__ = ["websocket_endpoint"]


async def websocket_endpoint(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    endpoint = websocket.path_params["endpoint"]
    try:
        await hub.serve(websocket, endpoint)
    except HubError as error:
        await _refuse(websocket, error)


async def _refuse(websocket: WebSocket, error: HubError) -> None:
    """Refuse the handshake with an HTTP status, or close if it was accepted."""
    if websocket.client_state.name != "CONNECTING":
        return
    response = Response(
        json.dumps(error.to_operation_outcome()),
        status_code=error.status_code,
        media_type="application/json",
    )
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:
        # The server does not support denial responses: a 403 close instead.
        await websocket.close(code=1008, reason=error.diagnostics[:120])
