"""The reading-room demo in examples/ runs end to end against a real hub."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from conftest import RunningHub


DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


def run_demo(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), "--timeout", "45", *arguments],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def assert_reading_room_followed(output: str) -> None:
    for line in (
        "[PACS] <- ImagingStudy-open: showing study GH339884 for patient Smith, John",
        "[PACS] -> DiagnosticReport-update (hub answered 202)",
        "findings: simple cyst 12 mm [selected]",
        "[PACS] <- DiagnosticReport-select: showing study GH339884 for patient "
        "Smith, John; measurements: simple cyst 12 mm (highlighted)",
        "[REPORT] -> DiagnosticReport-close (hub answered 202)",
        "[EHR] final: no patient open",
        "[PACS] final: no study shown",
        "[DEMO] OK: every app followed the reading room to the end",
    ):
        assert line in output


def test_demo_runs_the_reading_room_on_a_hub_it_starts() -> None:
    result = run_demo()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "[DEMO] hub running at http://127.0.0.1:" in result.stdout
    assert_reading_room_followed(result.stdout)


async def test_demo_runs_the_reading_room_on_a_running_hub(hub: RunningHub) -> None:
    # The hub runs in this test's event loop, so the demo must not block it.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(DEMO),
        "--hub",
        hub.hub_url,
        "--timeout",
        "45",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 90)
    text = output.decode()

    assert process.returncode == 0, text
    assert "[DEMO] hub running" not in text
    assert_reading_room_followed(text)


def test_demo_fails_with_a_message_when_the_hub_is_unreachable() -> None:
    result = run_demo("--hub", "http://127.0.0.1:9/fhircast/STU3")

    assert result.returncode == 1
    assert "cannot reach the hub at http://127.0.0.1:9/fhircast/STU3" in result.stdout
    assert "[DEMO] FAILED:" in result.stdout


def test_demo_names_the_missing_spec_examples_before_starting_anything() -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO), "--timeout", "45"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={**os.environ, "FHIRCAST_SPEC_EXAMPLES": "/nonexistent/spec-examples"},
    )

    assert result.returncode == 1
    assert "example messages are not in /nonexistent/spec-examples" in result.stdout
    assert "FHIRCAST_SPEC_EXAMPLES" in result.stdout
    assert "[PACS]" not in result.stdout
