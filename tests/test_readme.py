"""The README's example runs as written, against a real hub."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from conftest import RunningHub, spec_example


ROOT = Path(__file__).resolve().parents[1]


async def test_readme_subscribe_and_receive_example_prints_the_event(
    hub: RunningHub,
) -> None:
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## Subscribe and receive\n\n```python\n(.*?)```", readme, re.S)
    assert code is not None, "the README lost its example"
    example = spec_example("stu3-3-3-1-Patient-open-1.json")
    example["event"]["hub.topic"] = "room-1"
    # Sent first: the example receives it as the replay of the open context.
    assert await hub.client().send(example) == 202

    program = code.group(1).replace("http://127.0.0.1:8000", hub.base_url)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        program,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    output, errors = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 0, errors.decode()
    assert output.decode().strip() == "Patient-open patient"
