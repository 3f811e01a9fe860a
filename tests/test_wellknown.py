"""Discovery: /.well-known/fhircast-configuration, truthful about what works."""

from __future__ import annotations

import httpx2
import pytest

from builders import new_topic, report_open
from conftest import RunningHub
from fhircast_hub.events.catalog import CATALOG


@pytest.mark.parametrize("base", ["", "/fhircast/STU3", "/api/hub"])
async def test_wellknown_describes_the_stu3_hub(hub: RunningHub, base: str) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.get(
            f"{hub.base_url}{base}/.well-known/fhircast-configuration"
        )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    configuration = response.json()
    assert sorted(configuration["eventsSupported"]) == sorted(
        definition.name for definition in CATALOG.values()
    )
    assert configuration["websocketSupport"] is True
    assert configuration["fhircastVersion"] == "3.0.0"
    assert configuration.get("webhookSupport", False) is False
    assert configuration["capabilities"]["supportsGetCurrentContext"] is True
    assert configuration.get("getCurrentSupport", True) is True


async def test_wellknown_events_supported_can_all_be_subscribed(
    hub: RunningHub,
) -> None:
    client = hub.client()
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{hub.hub_url}/.well-known/fhircast-configuration")
    events = response.json()["eventsSupported"]
    topic = new_topic()

    endpoint = await client.subscribe(topic, events)

    async with client.connect(endpoint) as connection:
        assert connection.confirmation["hub.events"].split(",") == events


async def test_wellknown_current_context_capability_is_true(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    await client.subscribe(topic, ["Patient-open"])

    assert await client.current_context(topic) == {"context.type": "", "context": []}


async def test_wellknown_non_current_context_updates_work(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["DiagnosticReport-open"])
    async with client.connect(endpoint) as connection:
        await client.send(report_open(topic, "r1"))
        version = (await connection.next_event())["event"]["context.versionId"]
    await client.send(report_open(topic, "r2"))
    updates = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    context = [
        {"key": "report", "reference": {"reference": "DiagnosticReport/r1"}},
        {"key": "updates", "resource": updates},
    ]

    status = await client.publish(
        topic, "DiagnosticReport-update", context, version_id=version
    )

    assert status == 202
