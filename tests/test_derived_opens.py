"""Hub-made opens for subscribers granted the implied open but not the event.

FHIRcast STU3 2-9: when subscribers of a topic hold different event sets, the
hub sends the opens an event implies (an Encounter-open implies a Patient-open)
and should not send duplicates. docs/decisions.md: once per resource, until
that resource's own close.
"""

from __future__ import annotations

from typing import Any

import httpx2

from builders import encounter, new_topic, notification, patient, post_event, study
from conftest import RunningHub
from fhircast_hub.client import Connection, HubClient


def report(report_id: str = "r1") -> dict[str, Any]:
    return {
        "key": "report",
        "resource": {"resourceType": "DiagnosticReport", "id": report_id},
    }


async def subscriber(client: HubClient, topic: str, *events: str) -> Connection:
    endpoint = await client.subscribe(topic, events, subscriber_name="+".join(events))
    return client.connect(endpoint)


def assert_derived_open(
    derived: dict[str, Any],
    cause: dict[str, Any],
    event: str,
    context: list[dict[str, Any]],
) -> None:
    assert derived["event"]["hub.event"] == event
    assert derived["event"]["hub.topic"] == cause["event"]["hub.topic"]
    assert derived["event"]["context"] == context
    assert derived["id"] != cause["id"]
    assert derived["timestamp"] == cause["timestamp"]


async def test_encounter_open_gives_a_patient_open_subscriber_one_patient_open(
    hub: RunningHub,
) -> None:
    topic = new_topic()
    client = hub.client()
    only_patient = await subscriber(client, topic, "Patient-open")
    only_encounter = await subscriber(client, topic, "Encounter-open")
    both = await subscriber(client, topic, "Encounter-open", "Patient-open")

    async with only_patient, only_encounter, both:
        first = notification(topic, "Encounter-open", [encounter("e1"), patient("p1")])
        assert await client.send(first) == 202
        derived = await only_patient.next_event()
        assert_derived_open(derived, first, "Patient-open", [patient("p1")])
        # The hub-made open does not change the current context.
        assert (await client.current_context(topic))["context.type"] == "Encounter"

        # A second event naming p1 makes no second Patient-open.
        second = notification(topic, "Encounter-open", [encounter("e2"), patient("p1")])
        assert await client.send(second) == 202
        marker = notification(topic, "Patient-open", [patient("p2")])
        assert await client.send(marker) == 202
        assert (await only_patient.next_event())["id"] == marker["id"]

        # Granted the event itself, a subscriber gets only the event.
        for connection in (only_encounter, both):
            assert (await connection.next_event())["id"] == first["id"]
            assert (await connection.next_event())["id"] == second["id"]
        assert (await both.next_event())["id"] == marker["id"]


async def test_patient_close_of_an_announced_patient_ends_the_announcement(
    hub: RunningHub,
) -> None:
    topic = new_topic()
    client = hub.client()
    follower = await subscriber(client, topic, "Patient-open", "Patient-close")

    async with follower:
        first = notification(topic, "Encounter-open", [encounter("e1"), patient("p1")])
        assert await client.send(first) == 202
        assert_derived_open(
            await follower.next_event(), first, "Patient-open", [patient("p1")]
        )

        # The patient was only announced by the hub; its close is accepted
        # and delivered, and the encounter stays the current context.
        close = notification(topic, "Patient-close", [patient("p1")])
        assert await client.send(close) == 202
        assert (await follower.next_event())["id"] == close["id"]
        assert (await client.current_context(topic))["context.type"] == "Encounter"

        # After that close, the next event naming p1 announces it again.
        again = notification(topic, "Encounter-open", [encounter("e2"), patient("p1")])
        assert await client.send(again) == 202
        assert_derived_open(
            await follower.next_event(), again, "Patient-open", [patient("p1")]
        )


async def test_patient_close_of_a_patient_neither_open_nor_announced_is_409(
    hub: RunningHub,
) -> None:
    topic = new_topic()
    client = hub.client()
    await client.subscribe(topic, ["Patient-open"])
    opened = notification(topic, "Encounter-open", [encounter("e1"), patient("p1")])
    assert await client.send(opened) == 202

    close = notification(topic, "Patient-close", [patient("p2")])
    response: httpx2.Response = await post_event(hub.hub_url, close)

    assert response.status_code == 409, response.text


async def test_imaging_study_open_gives_a_patient_open_subscriber_its_patient(
    hub: RunningHub,
) -> None:
    topic = new_topic()
    client = hub.client()
    follower = await subscriber(client, topic, "Patient-open")

    async with follower:
        opened = notification(topic, "ImagingStudy-open", [study("s1"), patient("p1")])
        assert await client.send(opened) == 202
        assert_derived_open(
            await follower.next_event(), opened, "Patient-open", [patient("p1")]
        )

        again = notification(topic, "ImagingStudy-open", [study("s2"), patient("p1")])
        assert await client.send(again) == 202
        marker = notification(topic, "Patient-open", [patient("p2")])
        assert await client.send(marker) == 202
        assert (await follower.next_event())["id"] == marker["id"]


async def test_report_open_gives_its_patient_and_study_opens(
    hub: RunningHub,
) -> None:
    topic = new_topic()
    client = hub.client()
    follower = await subscriber(client, topic, "Patient-open", "ImagingStudy-open")

    async with follower:
        opened = notification(
            topic, "DiagnosticReport-open", [report(), patient("p1"), study("s1")]
        )
        assert await client.send(opened) == 202
        assert_derived_open(
            await follower.next_event(), opened, "Patient-open", [patient("p1")]
        )
        assert_derived_open(
            await follower.next_event(),
            opened,
            "ImagingStudy-open",
            [patient("p1"), study("s1")],
        )
        marker = notification(topic, "Patient-open", [patient("p2")])
        assert await client.send(marker) == 202
        assert (await follower.next_event())["id"] == marker["id"]


async def test_no_open_is_made_for_a_patient_that_is_open_itself(
    hub: RunningHub,
) -> None:
    topic = new_topic()
    client = hub.client()
    follower = await subscriber(client, topic, "Patient-open")

    async with follower:
        patient_open = notification(topic, "Patient-open", [patient("p1")])
        assert await client.send(patient_open) == 202
        assert (await follower.next_event())["id"] == patient_open["id"]

        opened = notification(topic, "Encounter-open", [encounter("e1"), patient("p1")])
        assert await client.send(opened) == 202
        marker = notification(topic, "Patient-open", [patient("p2")])
        assert await client.send(marker) == 202
        assert (await follower.next_event())["id"] == marker["id"]


async def test_late_subscriber_of_patient_open_is_told_of_an_open_encounters_patient(
    hub: RunningHub,
) -> None:
    topic = new_topic()
    client = hub.client()
    cause = notification(topic, "Encounter-open", [encounter("e1"), patient("p1")])
    assert await client.send(cause) == 202

    async with await subscriber(client, topic, "Patient-open") as late:
        replayed = await late.next_event()

    assert_derived_open(replayed, cause, "Patient-open", [patient("p1")])
