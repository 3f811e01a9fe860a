"""``{hub.url}/.well-known/fhircast-configuration``: what this hub supports."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from .. import stu2
from ..events.catalog import CATALOG


__all__ = ["stu2_configuration", "stu3_configuration"]


async def stu3_configuration(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "eventsSupported": [definition.name for definition in CATALOG.values()],
            "websocketSupport": True,
            "webhookSupport": False,
            "fhircastVersion": "3.0.0",
            "getCurrentSupport": True,
            "capabilities": {
                "supportsGetCurrentContext": True,
                "supportsNonCurrentContextUpdates": True,
            },
        }
    )


async def stu2_configuration(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "eventsSupported": stu2.events_supported(),
            "websocketSupport": True,
            "webhookSupport": True,
            "fhircastVersion": "STU2",
        }
    )
