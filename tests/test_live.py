"""The live view for big screens."""

from __future__ import annotations

import httpx2

from conftest import RunningHub


async def test_live_page_is_served_as_html(hub: RunningHub) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{hub.base_url}/live?topic=room-1")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "FHIRcast live" in response.text
