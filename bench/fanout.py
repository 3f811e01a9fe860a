"""Fan-out latency and throughput: memory vs Redis, one vs two hub processes.

Not a test. Starts real hub processes (and a redis-server) on loopback and
drives them with websocket subscribers and an HTTP publisher in this process,
then prints a Markdown table whose last columns are ratios to the one-process
memory hub, measured in the same run::

    PYTHONPATH=src python bench/fanout.py --subscribers 50 --events 100 --rounds 3

Latency: events are posted one at a time, and each is timed from the POST
until the last subscriber has it. Throughput: events are posted by several
concurrent senders, and every delivery to every subscriber is counted. The
subscribers acknowledge each event, as FHIRcast asks. This process is the
load generator and shares the machine's cores with the hubs: absolute
numbers say little, the ratios between the setups more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import websockets


__all__ = ["main"]

SRC = Path(__file__).resolve().parents[1] / "src"
REDIS_SERVER = "/usr/bin/redis-server"


@dataclass
class Result:
    setup: str
    latency_p50_ms: float
    latency_p95_ms: float
    deliveries_per_second: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def redis_server(directory: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def hub_processes(count: int, redis_url: str | None) -> Iterator[list[str]]:
    processes, urls = [], []
    for _ in range(count):
        port = free_port()
        command = [sys.executable, "-m", "fhircast_hub", "serve", "--port", str(port)]
        command += ["--log-level", "warning"]
        if redis_url is not None:
            command += ["--redis-url", redis_url]
        processes.append(
            subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(SRC)})
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


async def wait_ready(urls: list[str]) -> None:
    async with httpx2.AsyncClient(timeout=2) as http:
        for url in urls:
            for _ in range(300):
                try:
                    if (await http.get(f"{url}/readyz")).status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"the hub at {url} did not get ready")


def patient_open(topic: str) -> dict[str, object]:
    return {
        "timestamp": "2026-01-01T00:00:00Z",
        "id": str(uuid.uuid4()),
        "event": {
            "hub.topic": topic,
            "hub.event": "Patient-open",
            "context": [
                {
                    "key": "patient",
                    "resource": {"resourceType": "Patient", "id": str(uuid.uuid4())},
                }
            ],
        },
    }


class Fanout:
    """Subscribers spread over the hubs, and the bookkeeping of arrivals."""

    def __init__(self, subscribers: int) -> None:
        self.subscribers = subscribers
        self.remaining: dict[str, int] = {}
        self.done: dict[str, asyncio.Event] = {}
        self.delivered = 0

    def expect(self, event_id: str) -> asyncio.Event:
        self.remaining[event_id] = self.subscribers
        self.done[event_id] = asyncio.Event()
        return self.done[event_id]

    async def subscriber(self, socket: websockets.ClientConnection) -> None:
        async for frame in socket:
            message = json.loads(frame)
            event_id = message.get("id")
            if event_id is None:
                continue
            await socket.send(json.dumps({"id": event_id, "status": 200}))
            self.delivered += 1
            self.remaining[event_id] -= 1
            if self.remaining[event_id] == 0:
                self.done[event_id].set()


async def measure(
    setup: str, urls: list[str], subscribers: int, events: int, senders: int
) -> Result:
    await wait_ready(urls)
    topic = str(uuid.uuid4())
    fanout = Fanout(subscribers)
    sockets = []
    async with httpx2.AsyncClient(timeout=30) as http:
        for number in range(subscribers):
            base = urls[number % len(urls)]
            response = await http.post(
                f"{base}/fhircast/STU3",
                data={
                    "hub.channel.type": "websocket",
                    "hub.mode": "subscribe",
                    "hub.topic": topic,
                    "hub.events": "Patient-open",
                },
            )
            socket = await websockets.connect(response.json()["hub.channel.endpoint"])
            await socket.recv()  # the confirmation
            sockets.append(socket)
        readers = [asyncio.create_task(fanout.subscriber(s)) for s in sockets]
        publish_url = f"{urls[0]}/fhircast/STU3"

        latencies = []
        for _ in range(events):
            event = patient_open(topic)
            done = fanout.expect(str(event["id"]))
            started = time.perf_counter()
            (await http.post(publish_url, json=event)).raise_for_status()
            await asyncio.wait_for(done.wait(), 30)
            latencies.append(time.perf_counter() - started)

        batch = [patient_open(topic) for _ in range(events * 2)]
        waits = [fanout.expect(str(event["id"])) for event in batch]
        delivered_before = fanout.delivered

        async def sender(share: list[dict[str, object]]) -> None:
            for event in share:
                (await http.post(publish_url, json=event)).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(sender(batch[n::senders]) for n in range(senders)))
        await asyncio.wait_for(asyncio.gather(*(w.wait() for w in waits)), 120)
        elapsed = time.perf_counter() - started

        for socket in sockets:
            await socket.close()
        await asyncio.gather(*readers, return_exceptions=True)

    quantiles = statistics.quantiles(latencies, n=20)
    return Result(
        setup,
        statistics.median(latencies) * 1000,
        quantiles[18] * 1000,
        (fanout.delivered - delivered_before) / elapsed,
    )


async def run(subscribers: int, events: int, senders: int, rounds: int) -> list[Result]:
    """Each setup once per round, interleaved; the median of each figure."""
    setups = [("1 process, memory", 1, False), ("1 process, Redis", 1, True)]
    setups.append(("2 processes, Redis", 2, True))
    measured: dict[str, list[Result]] = {name: [] for name, _, _ in setups}
    with tempfile.TemporaryDirectory() as directory, redis_server(directory) as redis:
        for _ in range(rounds):
            for name, processes, shared in setups:
                with hub_processes(processes, redis if shared else None) as urls:
                    measured[name].append(
                        await measure(name, urls, subscribers, events, senders)
                    )
    return [
        Result(
            name,
            statistics.median(r.latency_p50_ms for r in results),
            statistics.median(r.latency_p95_ms for r in results),
            statistics.median(r.deliveries_per_second for r in results),
        )
        for name, results in measured.items()
    ]


def report(results: list[Result], subscribers: int, events: int, rounds: int) -> str:
    base = results[0]
    lines = [
        f"{subscribers} subscribers, {events} events timed one by one, "
        f"{2 * events} events sent concurrently; medians of {rounds} rounds",
        "",
        "| setup | latency p50 ms | p95 ms | deliveries/s | p50 vs memory "
        "| throughput vs memory |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        lines.append(
            f"| {result.setup} | {result.latency_p50_ms:.1f} "
            f"| {result.latency_p95_ms:.1f} | {result.deliveries_per_second:.0f} "
            f"| {result.latency_p50_ms / base.latency_p50_ms:.2f} "
            f"| {result.deliveries_per_second / base.deliveries_per_second:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    results = asyncio.run(
        run(
            arguments.subscribers, arguments.events, arguments.senders, arguments.rounds
        )
    )
    print(report(results, arguments.subscribers, arguments.events, arguments.rounds))


if __name__ == "__main__":
    main()
