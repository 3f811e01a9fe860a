"""Sending events over real HTTP and their delivery over real websockets."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from builders import (
    collect_events,
    encounter,
    new_topic,
    notification,
    patient,
    patient_open,
    post_event,
    report,
    study,
)
from conftest import RunningHub, StartHub


def assert_outcome(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    diagnostics: str = outcome["issue"][0]["diagnostics"]
    assert diagnostics
    return diagnostics


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/fhir+json",
        "application/fhir+json; charset=utf-8",
        "Application/JSON",
    ],
)
async def test_events_accepts_json_and_fhir_json(
    hub: RunningHub, content_type: str
) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])
    sent = patient_open(topic)

    async with client.connect(endpoint) as connection:
        response = await post_event(hub.hub_url, sent, content_type=content_type)
        assert response.status_code == 202
        assert (await connection.next_event())["id"] == sent["id"]


@pytest.mark.parametrize("base", ["/fhircast/STU3", "/api/hub"])
@pytest.mark.parametrize("with_topic", [False, True])
async def test_events_accepted_at_hub_url_and_hub_url_topic(
    hub: RunningHub, base: str, with_topic: bool
) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])
    sent = patient_open(topic)
    url = hub.base_url + base + (f"/{topic}" if with_topic else "")

    async with client.connect(endpoint) as connection:
        assert (await post_event(url, sent)).status_code == 202
        assert (await connection.next_event())["id"] == sent["id"]


async def test_events_topic_in_path_must_match_the_body(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])

    async with client.connect(endpoint) as connection:
        response = await post_event(f"{hub.hub_url}/{new_topic()}", patient_open(topic))
        assert_outcome(response, 400)
        with pytest.raises(TimeoutError):
            await connection.receive(timeout=0.3)


def _without(path: tuple[str, ...]) -> dict[str, Any]:
    body = patient_open("t")
    container = body
    for name in path[:-1]:
        container = container[name]
    del container[path[-1]]
    return body


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_without(("timestamp",)), id="no-timestamp"),
        pytest.param(_without(("id",)), id="no-id"),
        pytest.param(_without(("event",)), id="no-event"),
        pytest.param(_without(("event", "hub.topic")), id="no-hub.topic"),
        pytest.param(_without(("event", "hub.event")), id="no-hub.event"),
        pytest.param(_without(("event", "context")), id="no-context"),
        pytest.param({**patient_open("t"), "id": ""}, id="empty-id"),
        pytest.param({**patient_open("t"), "timestamp": 5}, id="number-timestamp"),
        pytest.param({**patient_open("t"), "event": []}, id="event-not-object"),
        pytest.param(
            notification("t", "Patient-open", {"key": "patient"}),  # type: ignore[arg-type]
            id="context-not-array",
        ),
        pytest.param(
            notification("t", "Patient-open", [{"resource": {}}]),
            id="context-entry-without-key",
        ),
        pytest.param(["not", "an", "object"], id="array-body"),
        pytest.param(notification("t", "ient-op", [patient()]), id="partial-name"),
        pytest.param(notification("t", "Banana", [patient()]), id="unknown-event"),
        pytest.param(notification("t", "*-open", [patient()]), id="wildcard"),
    ],
)
async def test_events_envelope_is_checked(hub: RunningHub, body: Any) -> None:
    response = await post_event(hub.hub_url, body)

    assert_outcome(response, 400)


def _without_id(entry: dict[str, Any]) -> dict[str, Any]:
    entry = copy.deepcopy(entry)
    del entry["resource"]["id"]
    return entry


@pytest.mark.parametrize(
    ("event", "context"),
    [
        pytest.param("Patient-open", [], id="patient-open-no-patient"),
        pytest.param("Patient-open", [study()], id="patient-open-wrong-key"),
        pytest.param("Patient-open", [_without_id(patient())], id="patient-open-no-id"),
        pytest.param("Patient-close", [], id="patient-close-no-patient"),
        pytest.param("Encounter-open", [encounter()], id="encounter-no-patient"),
        pytest.param("Encounter-open", [patient()], id="encounter-no-encounter"),
        pytest.param("ImagingStudy-open", [patient()], id="study-open-no-study"),
        pytest.param(
            "ImagingStudy-open", [_without_id(study())], id="study-open-no-id"
        ),
        pytest.param("DiagnosticReport-open", [report()], id="report-open-no-patient"),
        pytest.param(
            "DiagnosticReport-open", [patient(), study()], id="report-open-no-report"
        ),
        pytest.param(
            "DiagnosticReport-close",
            [_without_id(report()), patient()],
            id="report-close-no-id",
        ),
        pytest.param(
            "DiagnosticReport-close",
            [
                {"key": "report", "reference": {"reference": "DiagnosticReport/"}},
                patient(),
            ],
            id="report-close-reference-without-id",
        ),
        pytest.param(
            "DiagnosticReport-update", [report(), patient()], id="update-no-updates"
        ),
        pytest.param(
            "DiagnosticReport-update",
            [report(), {"key": "updates", "resource": {"resourceType": "Bundle"}}],
            id="update-no-version",
        ),
        pytest.param(
            "DiagnosticReport-update",
            [
                {"key": "report", "reference": {"reference": "DiagnosticReport"}},
                {"key": "updates", "resource": {"resourceType": "Bundle"}},
            ],
            id="update-reference-without-type",
        ),
        pytest.param(
            "DiagnosticReport-select", [report(), patient()], id="select-no-select"
        ),
        pytest.param("SyncError", [], id="syncerror-no-outcome"),
        pytest.param(
            "SyncError",
            [{"key": "operationoutcome", "resource": {"resourceType": "Patient"}}],
            id="syncerror-not-an-outcome",
        ),
        pytest.param("UserLogout", [], id="logout-no-parameters"),
        pytest.param("UserHibernate", [], id="hibernate-no-parameters"),
    ],
)
async def test_events_required_context_is_checked(
    hub: RunningHub, event: str, context: list[dict[str, Any]]
) -> None:
    response = await post_event(hub.hub_url, notification(new_topic(), event, context))

    diagnostics = assert_outcome(response, 400)
    assert event in diagnostics


async def test_events_names_match_case_insensitively_and_go_out_canonical(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["patient-open"])
    sent = notification(topic, "PATIENT-OPEN", [patient()])

    async with client.connect(endpoint) as connection:
        assert connection.confirmation["hub.events"] == "Patient-open"
        assert await client.send(sent) == 202
        event = await connection.next_event()

    assert event["id"] == sent["id"]
    assert event["event"]["hub.event"] == "Patient-open"


async def test_events_custom_reverse_domain_events_are_delivered(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["com.example.ping", "Patient-open"])
    context = [{"key": "extension", "data": {"anything": [1, 2]}}]
    sent = notification(topic, "COM.Example.Ping", context)

    async with client.connect(endpoint) as connection:
        assert await client.send(sent) == 202
        event = await connection.next_event()

    assert event["id"] == sent["id"]
    assert event["event"]["hub.event"] == "COM.Example.Ping"
    assert event["event"]["context"] == context


async def test_events_delivered_to_every_subscriber_with_the_request_id(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    sender_endpoint = await client.subscribe(
        topic, ["Patient-open"], subscriber_name="a"
    )
    other_endpoint = await client.subscribe(
        topic, ["Patient-open", "Patient-close"], subscriber_name="b"
    )
    outsider_endpoint = await client.subscribe(
        topic, ["Patient-close", "ImagingStudy-open"]
    )
    stranger_endpoint = await client.subscribe(new_topic(), ["Patient-open"])
    sent = patient_open(topic)

    async with (
        client.connect(sender_endpoint) as sender,
        client.connect(other_endpoint) as other,
        client.connect(outsider_endpoint) as outsider,
        client.connect(stranger_endpoint) as stranger,
    ):
        assert await client.send(sent) == 202
        for connection in (sender, other):
            event = await connection.next_event()
            assert event == {
                **sent,
                "event": {
                    **sent["event"],
                    "context.versionId": event["event"]["context.versionId"],
                },
            }
        for connection in (outsider, stranger):
            with pytest.raises(TimeoutError):
                await connection.receive(timeout=0.3)
        # Exactly one each.
        for connection in (sender, other):
            with pytest.raises(TimeoutError):
                await connection.receive(timeout=0.1)


async def test_events_same_order_for_every_subscriber(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    endpoints = [
        await client.subscribe(topic, ["Patient-open", "com.example.ping"])
        for _ in range(3)
    ]
    publishers = [hub.client(), hub.client()]

    async def publish(publisher: int) -> None:
        for index in range(50):
            if index % 2:
                body = patient_open(topic, f"p{publisher}-{index}")
            else:
                body = notification(topic, "com.example.ping", [])
            await publishers[publisher].send(body)

    async with (
        client.connect(endpoints[0]) as first,
        client.connect(endpoints[1]) as second,
        client.connect(endpoints[2]) as third,
    ):
        receiving = [
            asyncio.create_task(collect_events(connection, 100))
            for connection in (first, second, third)
        ]
        await asyncio.gather(publish(0), publish(1))
        orders = [[event["id"] for event in await task] for task in receiving]

    assert len(set(orders[0])) == 100
    assert orders[0] == orders[1] == orders[2]


async def test_events_repeated_id_is_accepted_and_not_delivered_again(
    hub: RunningHub,
) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])
    sent = patient_open(topic)

    async with client.connect(endpoint) as connection:
        assert await client.send(sent) == 202
        assert await client.send(sent) == 202
        await connection.next_event()
        with pytest.raises(TimeoutError):
            await connection.receive(timeout=0.3)
        # The same id on another topic is another event.
        other = {**sent, "event": {**sent["event"], "hub.topic": new_topic()}}
        assert await client.send(other) == 202


async def test_events_repeated_id_after_the_window_is_delivered(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(duplicate_window=0.2)
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-open"])
    sent = patient_open(topic)

    async with client.connect(endpoint) as connection:
        await client.send(sent)
        await connection.next_event()
        await asyncio.sleep(0.3)
        await client.send(sent)
        assert (await connection.next_event())["id"] == sent["id"]


async def test_events_refused_event_id_may_be_sent_again(hub: RunningHub) -> None:
    client = hub.client()
    topic = new_topic()
    endpoint = await client.subscribe(topic, ["Patient-close", "Patient-open"])
    close = notification(topic, "Patient-close", [patient()])

    async with client.connect(endpoint) as connection:
        response = await post_event(hub.hub_url, close)
        assert_outcome(response, 409)
        await client.send(patient_open(topic))
        await connection.next_event()
        assert await client.send(close) == 202
        assert (await connection.next_event())["id"] == close["id"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "multipart/form-data"]
)
async def test_events_other_content_types_get_415(
    hub: RunningHub, content_type: str
) -> None:
    response = await post_event(
        hub.hub_url, patient_open(new_topic()), content_type=content_type
    )

    assert_outcome(response, 415)


async def test_events_body_over_the_limit_gets_413(start_hub: StartHub) -> None:
    hub = await start_hub(max_body_bytes=2000)
    body = patient_open(new_topic())
    body["event"]["context"][0]["resource"]["text"] = "x" * 3000

    response = await post_event(hub.hub_url, body)

    assert_outcome(response, 413)
