"""Browser apps call the hub from their own origins."""

from __future__ import annotations

import httpx2

from conftest import RunningHub


async def test_browser_apps_may_call_the_hub_from_another_origin(
    hub: RunningHub,
) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.options(
            hub.hub_url,
            headers={
                "Origin": "https://viewer.example.org",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in (
        "*",
        "https://viewer.example.org",
    )
