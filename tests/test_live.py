"""The live view for big screens."""

from __future__ import annotations

import asyncio
import shutil
import tempfile

import httpx2
import pytest

from conftest import RunningHub, spec_example


# Headless, and no traffic of the browser's own to the outside world.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


async def test_live_page_is_served_as_html(hub: RunningHub) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{hub.base_url}/live?topic=room-1")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "FHIRcast live" in response.text


async def test_live_page_follows_the_topic_in_a_browser(hub: RunningHub) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (scripts/test installs it as root)")
    client = hub.client()
    for name in (
        "stu3-3-3-1-Patient-open-1.json",
        "stu3-3-5-1-ImagingStudy-open-1.json",
    ):
        example = spec_example(name)
        example["event"]["hub.topic"] = "room-1"
        await client.send(example)

    # Chromium dumps the page when its virtual time runs out, which on a busy
    # machine can come before the websocket delivered: allow it more time.
    for budget in (5000, 10000, 20000):
        page = await _dump_dom(chromium, f"{hub.base_url}/live?topic=room-1", budget)
        if "following room-1" in page and page.count("John Smith (4438001)") == 3:
            break

    # The page subscribed, received the replayed open contexts and read the
    # current context: the study is current, the patient shown in it.
    assert "following room-1" in page
    assert page.count("Study GH339884") == 2  # the context card and the event
    assert page.count("John Smith (4438001)") == 3  # the card and both events
    assert "ImagingStudy-open" in page


async def _dump_dom(chromium: str, url: str, budget: int) -> str:
    with tempfile.TemporaryDirectory() as profile:
        browser = await asyncio.create_subprocess_exec(
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget}",
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        dom, _ = await asyncio.wait_for(browser.communicate(), 90)
    return dom.decode()
