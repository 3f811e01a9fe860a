"""``/live``: a page for big screens that follows one topic as it changes.

The page is an ordinary FHIRcast subscriber written in JavaScript: it
subscribes to every event through ``hub.url`` like any app, so it sees only
what its token (if any) allows, and the hub needs no special access for it.
"""

from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse


__all__ = ["live_page"]

_PAGE = files("fhircast_hub").joinpath("static/live.html").read_text()


async def live_page(request: Request) -> HTMLResponse:
    return HTMLResponse(_PAGE)
