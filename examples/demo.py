"""Run the whole reading room with one command.

    python examples/demo.py                  # starts a hub on a free port
    python examples/demo.py --hub URL        # uses a hub that already runs

Starts a hub (unless ``--hub`` is given), the PACS viewer and the reporting
app, then the EHR, on a fresh topic. Each app's view is printed as it
changes. When the session is over, checks that every app ended where the
workflow should leave it and that the hub's current context is empty; exits
0 if so, 1 with the reasons otherwise. Everything it started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import uuid
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2

from readingroom import missing_spec_examples


HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
APPS = {"PACS": "pacs_viewer.py", "REPORT": "reporting_app.py", "EHR": "ehr.py"}


class DemoFailed(Exception):
    pass


def child_environment() -> dict[str, str]:
    """The environment for the hub and the apps: our package importable."""
    environment = dict(os.environ)
    paths = [str(SRC), environment.get("PYTHONPATH", "")]
    environment["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def stop(process: Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), 5)
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def local_hub(timeout: float) -> AsyncIterator[str]:
    """A hub on a free loopback port, as its own process; yields its hub.url."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fhircast_hub",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        env=child_environment(),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_ready(base, process, timeout)
        print(f"[DEMO] hub running at {base}/fhircast/STU3", flush=True)
        yield f"{base}/fhircast/STU3"
    finally:
        await stop(process)


async def wait_until_ready(base: str, process: Process, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx2.AsyncClient(timeout=2) as http:
        while loop.time() < deadline:
            if process.returncode is not None:
                raise DemoFailed(f"the hub exited with code {process.returncode}")
            with contextlib.suppress(httpx2.HTTPError):
                if (await http.get(f"{base}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise DemoFailed(f"the hub did not answer {base}/healthz within {timeout:g} s")


class RunningApp:
    """One app as a child process; its view lines are echoed, its summary kept."""

    def __init__(self, tag: str, process: Process) -> None:
        self.tag = tag
        self.process = process
        self.lines: list[str] = []
        self.summary: dict[str, Any] | None = None
        self.ready = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line.startswith("SUMMARY "):
                self.summary = json.loads(line.removeprefix("SUMMARY "))
                continue
            self.lines.append(line)
            print(line, flush=True)
            if "] ready:" in line:
                self.ready.set()

    async def finish(self) -> int:
        code = await self.process.wait()
        await self.reader
        return code


async def start_app(
    tag: str, hub_url: str, topic: str, args: argparse.Namespace
) -> RunningApp:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / APPS[tag]),
        "--hub",
        hub_url,
        "--topic",
        topic,
        "--pace",
        str(args.pace),
        "--timeout",
        str(args.timeout),
        "--summary",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=child_environment(),
    )
    return RunningApp(tag, process)


async def run_session(
    hub_url: str, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Run the three apps through one reading session; their summaries by tag."""
    topic = f"reading-room-{uuid.uuid4()}"
    apps: dict[str, RunningApp] = {}
    try:
        # The followers subscribe first, so that they see the EHR's first event.
        for tag in ("PACS", "REPORT"):
            apps[tag] = await start_app(tag, hub_url, topic, args)
        for app in list(apps.values()):
            await wait_ready(app, args.timeout)
        apps["EHR"] = await start_app("EHR", hub_url, topic, args)

        codes = await asyncio.wait_for(
            asyncio.gather(*(app.finish() for app in apps.values())), args.timeout
        )
    except TimeoutError:
        raise DemoFailed(f"the session did not end within {args.timeout:g} s") from None
    finally:
        for app in apps.values():
            await stop(app.process)

    failed = [
        f"{tag} exited with {code}"
        for tag, code in zip(apps, codes, strict=True)
        if code
    ]
    if failed:
        raise DemoFailed("; ".join(failed))

    print("\nFinal views:", flush=True)
    for app in apps.values():
        print("  " + app.lines[-1], flush=True)

    summaries = {tag: app.summary for tag, app in apps.items()}
    missing = [tag for tag, summary in summaries.items() if summary is None]
    if missing:
        raise DemoFailed(f"no final state from {', '.join(missing)}")
    await check_hub_is_empty(hub_url, topic)
    return {tag: summary for tag, summary in summaries.items() if summary is not None}


async def wait_ready(app: RunningApp, timeout: float) -> None:
    ready = asyncio.create_task(app.ready.wait())
    exited = asyncio.create_task(app.process.wait())
    done, pending = await asyncio.wait(
        {ready, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
    )
    for task in pending:
        task.cancel()
    if ready not in done:
        raise DemoFailed(f"{app.tag} did not start following the topic")


async def check_hub_is_empty(hub_url: str, topic: str) -> None:
    async with httpx2.AsyncClient(timeout=5) as http:
        response = await http.get(f"{hub_url.rstrip('/')}/{topic}")
    current = response.json()
    if (
        response.status_code != 200
        or current.get("context.type")
        or current.get("context")
    ):
        raise DemoFailed(
            f"the hub still holds a current context: status {response.status_code}"
        )


def check(summaries: dict[str, dict[str, Any]]) -> list[str]:
    """What differs from the end state the workflow must leave; empty if none."""
    problems = []
    expected_events = {
        "EHR": [
            "Patient-open",
            "ImagingStudy-open",
            "ImagingStudy-close",
            "Patient-close",
        ],
        "PACS": ["DiagnosticReport-update"],
        "REPORT": [
            "DiagnosticReport-open",
            "DiagnosticReport-select",
            "DiagnosticReport-close",
        ],
    }
    for tag, summary in summaries.items():
        if summary["published"] != expected_events[tag]:
            problems.append(
                f"{tag} sent {summary['published']}, expected {expected_events[tag]}"
            )
        still_open = [key for key in ("patient", "study", "report") if summary[key]]
        if still_open:
            problems.append(f"{tag} still shows a {', '.join(still_open)}")

    pacs, report = summaries["PACS"], summaries["REPORT"]
    if len(pacs["measurements"]) != 1:
        problems.append(
            f"PACS made {len(pacs['measurements'])} measurements, expected 1"
        )
    if list(report["signed_findings"]) != pacs["measurements"]:
        problems.append("the signed report does not hold the viewer's measurement")
    if not (report["selected"] == pacs["highlighted"] == pacs["measurements"]):
        problems.append("the viewer did not highlight the finding the report selected")
    return problems


async def demo(args: argparse.Namespace) -> int:
    try:
        if args.hub:
            summaries = await run_session(args.hub, args)
        else:
            async with local_hub(args.timeout) as hub_url:
                summaries = await run_session(hub_url, args)
    except DemoFailed as error:
        print(f"[DEMO] FAILED: {error}", flush=True)
        return 1

    problems = check(summaries)
    if problems:
        for problem in problems:
            print(f"[DEMO] FAILED: {problem}", flush=True)
        return 1
    print("[DEMO] OK: every app followed the reading room to the end", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hub", help="hub.url of a running hub (default: start one)")
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="seconds each app pauses before it sends an event (to watch it)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="give up after this many seconds"
    )
    arguments = parser.parse_args()
    if (problem := missing_spec_examples()) is not None:
        print(f"[DEMO] {problem}", flush=True)
        return 1
    return asyncio.run(demo(arguments))


if __name__ == "__main__":
    sys.exit(main())
