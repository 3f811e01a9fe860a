"""Every STU3 example message of the specification, sent to a real hub and
delivered unchanged apart from what the hub adds."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from builders import new_topic
from conftest import SPEC_EXAMPLES, RunningHub, spec_example
from fhircast_hub.client import HubClient
from fhircast_hub.events.catalog import Action, resolve_event_name


RESPONSE_SHAPES = {"stu3-2-9-GetCurrentContext-1.json"}
NOTIFICATIONS = sorted(
    path.name
    for path in Path(SPEC_EXAMPLES).glob("stu3-*.json")
    if path.name not in RESPONSE_SHAPES
)

OPEN = {
    "Patient": "stu3-3-3-1-Patient-open-1.json",
    "Encounter": "stu3-3-4-1-Encounter-open-1.json",
    "ImagingStudy": "stu3-3-5-1-ImagingStudy-open-1.json",
    "DiagnosticReport": "stu3-3-6-1-DiagnosticReport-open-1.json",
}
FIRST_UPDATE = "stu3-3-6-3-DiagnosticReport-update-1.json"
SELECT = "stu3-3-6-4-DiagnosticReport-select-1.json"
UNKNOWN_SELECTION = "Observation/e25ce4c2-95c1-4078-8ef5-84aab1a69036"


def on_topic(example: dict[str, Any], topic: str) -> dict[str, Any]:
    example = copy.deepcopy(example)
    example["event"]["hub.topic"] = topic
    return example


async def send_prelude(client: HubClient, name: str, topic: str) -> None:
    """What an example needs on the hub before it: its open, and content."""
    event = spec_example(name)["event"]["hub.event"]
    anchor, _, action = event.partition("-")
    if action.lower() in ("close", "update", "select"):
        assert await client.send(on_topic(spec_example(OPEN[anchor]), topic)) == 202
    if name == SELECT:
        await send_update(client, FIRST_UPDATE, topic)


async def send_update(client: HubClient, name: str, topic: str) -> str:
    """Send an update against the hub's version; return that version."""
    version = (await client.current_context(topic))["context.versionId"]
    update = on_topic(spec_example(name), topic)
    update["event"]["context.versionId"] = version
    assert await client.send(update) == 202
    return str(version)


@pytest.mark.parametrize("name", NOTIFICATIONS)
async def test_spec_examples_are_accepted_and_delivered(
    hub: RunningHub, name: str
) -> None:
    client = hub.client()
    topic = new_topic()
    example = on_topic(spec_example(name), topic)
    event_name = resolve_event_name(example["event"]["hub.event"]).canonical
    endpoint = await client.subscribe(topic, [event_name])
    await send_prelude(client, name, topic)

    async with client.connect(endpoint) as connection:
        expected = copy.deepcopy(example)
        expected["event"]["hub.event"] = event_name
        if "update" in name:
            prior = await send_update(client, name, topic)
            expected["event"]["context.priorVersionId"] = prior
            status = 202
        else:
            status = await client.send(example)
        delivered = await connection.next_event()

    definition = resolve_event_name(event_name).definition
    if definition is not None and definition.action in (Action.OPEN, Action.UPDATE):
        version = delivered["event"]["context.versionId"]
        assert version and version != expected["event"].get("context.priorVersionId")
        expected["event"]["context.versionId"] = version
    if name == SELECT:
        assert status == 206
        expected["event"]["context"] = [
            entry
            for entry in expected["event"]["context"]
            if entry.get("reference", {}).get("reference") != UNKNOWN_SELECTION
        ]
        assert len(expected["event"]["context"]) == 3
    else:
        assert status == 202
    assert delivered == expected


async def test_spec_examples_empty_current_context_matches_the_spec(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    await client.subscribe(topic, ["Patient-open"])

    assert await client.current_context(topic) == spec_example(
        "stu3-2-9-GetCurrentContext-1.json"
    )


def test_spec_examples_cover_every_stu3_example() -> None:
    assert len(NOTIFICATIONS) == 18
