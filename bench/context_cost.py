"""What one event costs the hub's rules as a report's shared content grows.

Not a test. Runs the publish path of one hub process without the network
(validate the notification, load the topic's context, apply the event,
serialize it once, compare-and-set on the memory store) for a re-opened
patient on a topic where a report with N shared findings is open, and prints
events per second and the ratio to N = 0, measured in the same run::

    PYTHONPATH=src python bench/context_cost.py --events 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

from fhircast_hub.broker.memory import MemoryBroker
from fhircast_hub.broker.messages import encode_event
from fhircast_hub.context import apply_event
from fhircast_hub.events.validation import parse_notification
from fhircast_hub.store.memory import MemoryStore


TOPIC = "bench-topic"


def notification(event: str, context: list[dict[str, Any]], **fields: Any) -> bytes:
    body = {
        "timestamp": "2026-12-03T10:00:00Z",
        "id": str(uuid.uuid4()),
        "event": {"hub.topic": TOPIC, "hub.event": event, "context": context},
    }
    body["event"].update(fields)
    return json.dumps(body).encode()


def resource(resource_type: str, resource_id: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": resource_type, "id": resource_id, **fields}


def finding(number: int) -> dict[str, Any]:
    return resource(
        "Observation",
        f"o{number}",
        status="preliminary",
        code={"coding": [{"system": "http://www.radlex.org", "code": "RID49690"}]},
        valueQuantity={"value": number, "unit": "mm"},
        note=[{"text": "a finding measured in the viewer " * 4}],
    )


async def handle(store: MemoryStore, raw: bytes) -> None:
    """The publish path of the hub, without HTTP and sockets."""
    parsed = parse_notification(json.loads(raw))
    state, revision = await store.load_context(TOPIC)
    change = apply_event(state, parsed, lambda: str(uuid.uuid4()))
    assert change is not None
    message = encode_event(parsed.id, parsed.name.canonical, change.distributed)
    assert await store.commit_context(TOPIC, change.state, revision, message)


async def events_per_second(findings: int, events: int) -> float:
    store = MemoryStore(MemoryBroker())
    patient = {"key": "patient", "resource": resource("Patient", "p1")}
    report = {"key": "report", "resource": resource("DiagnosticReport", "r1")}
    study = {"key": "study", "resource": resource("ImagingStudy", "s1")}
    await handle(store, notification("DiagnosticReport-open", [report, patient, study]))
    if findings:
        state, _ = await store.load_context(TOPIC)
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"request": {"method": "PUT"}, "resource": finding(number)}
                for number in range(findings)
            ],
        }
        update = notification(
            "DiagnosticReport-update",
            [report, {"key": "updates", "resource": bundle}],
            **{"context.versionId": state.opens[0].version_id},
        )
        await handle(store, update)

    # Every event is the same size; only the content beside it differs.
    raws = [notification("Patient-open", [patient]) for _ in range(events)]
    started = time.perf_counter()
    for raw in raws:
        await handle(store, raw)
    return events / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()

    sizes = (0, 30, 300)
    results: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(arguments.rounds):
        for size in sizes:
            results[size].append(await events_per_second(size, arguments.events))

    baseline = max(results[0])
    print("| findings shared | events/s (best of rounds) | vs no content |")
    print("|---|---|---|")
    for size in sizes:
        best = max(results[size])
        print(f"| {size} | {best:,.0f} | {best / baseline:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
