"""Medplum's published JavaScript client (@medplum/core) works with the hub.

tests/interop/medplum_fhircast.mjs drives the hub with ``MedplumClient`` on
Node.js and prints one JSON line per step; the hub runs with its defaults.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import websockets

from conftest import RunningHub


INTEROP = Path(__file__).resolve().parent / "interop"
SCRIPT = INTEROP / "medplum_fhircast.mjs"

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, with the pinned packages installed."""
    executable = shutil.which("node")
    if executable is None:
        pytest.skip("Node.js is not installed: the Medplum client runs on node")
    if not (INTEROP / "node_modules" / "@medplum" / "core").is_dir():
        npm = shutil.which("npm")
        assert npm is not None, "node is installed but npm is not; run npm ci"
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=INTEROP,
            check=True,
            timeout=300,
        )
    return executable


async def run_medplum(node: str, hub_url: str, topic: str) -> dict[str, dict[str, Any]]:
    """Run the script; its steps by name, in the order they were printed."""
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        hub_url,
        topic,
        cwd=INTEROP,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    lines = [json.loads(line) for line in stdout.decode().splitlines()]
    report = f"exit {process.returncode}\n{stdout.decode()}{stderr.decode()}"
    assert process.returncode == 0, report
    assert all(line["ok"] for line in lines), report
    return {line["step"]: line for line in lines}


async def test_medplum_client_subscribes_publishes_reads_context_and_unsubscribes(
    node: str, hub: RunningHub
) -> None:
    topic = f"medplum-{uuid.uuid4()}"
    observer = hub.client()
    watched = await observer.subscribe(
        topic,
        ["Patient-open", "Patient-close", "SyncError"],
        subscriber_name="observer",
    )

    async with observer.connect(watched) as watching:
        steps = await run_medplum(node, hub.hub_url, topic)

        seen = [await watching.next_event(), await watching.next_event()]
        # Medplum's acks carry no status: the hub must take them as success.
        with pytest.raises(TimeoutError):
            await watching.receive(timeout=0.5)

    assert list(steps) == [
        "subscribe",
        "connect",
        "confirmation",
        "publish-open",
        "receive-open",
        "get-context",
        "publish-close",
        "receive-close",
        "get-context-after-close",
        "unsubscribe",
        "done",
    ]

    endpoint = steps["subscribe"]["endpoint"]
    assert endpoint.startswith(hub.base_url.replace("http://", "ws://") + "/ws/")
    assert steps["connect"]["url"] == endpoint
    confirmation = steps["confirmation"]["frame"]
    assert confirmation["hub.topic"] == topic
    assert confirmation["hub.events"] == "Patient-open,Patient-close"

    opened, closed = steps["receive-open"], steps["receive-close"]
    assert opened["id"] == steps["publish-open"]["id"]
    assert opened["patient"].startswith("medplum-")
    assert opened["versionId"]
    assert set(opened["ack"]) == {"id", "timestamp"}
    assert opened["ack"]["id"] == opened["id"]
    assert closed["id"] == steps["publish-close"]["id"]
    assert closed["patient"] == opened["patient"]

    current = steps["get-context"]
    assert current["type"] == "Patient"
    assert current["patient"] == opened["patient"]
    assert current["versionId"] == opened["versionId"]
    after = steps["get-context-after-close"]
    assert (after["type"], after["entries"]) == ("", 0)

    assert steps["unsubscribe"]["events"] == ["Patient-open", "Patient-close"]
    assert steps["unsubscribe"]["acks"] == 2
    assert [event["id"] for event in seen] == [opened["id"], closed["id"]]

    # Unsubscribed through Medplum's `endpoint` field: the endpoint is dead.
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(endpoint, open_timeout=5):
            pass
