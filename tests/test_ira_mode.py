"""IHE IRA mode (``ira_mode=True``): what the IRA hub refuses and what it accepts."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from builders import (
    encounter,
    new_topic,
    notification,
    patient,
    post_event,
    post_form,
    study,
    subscribe_form,
)
from conftest import RunningHub, StartHub


IRA_EVENTS = (
    "DiagnosticReport-open,DiagnosticReport-close,DiagnosticReport-update,"
    "DiagnosticReport-select,SyncError"
)


@pytest.fixture
async def ira_hub(start_hub: StartHub) -> RunningHub:
    return await start_hub(ira_mode=True)


def ira_form(topic: str, **change: str) -> dict[str, str]:
    form = subscribe_form(topic, IRA_EVENTS, **{"subscriber.name": "reporting"})
    form.update(change)
    return form


def report(report_id: str = "r1") -> dict[str, Any]:
    return {
        "key": "report",
        "resource": {
            "resourceType": "DiagnosticReport",
            "id": report_id,
            "status": "unknown",
        },
    }


def refused(response: httpx2.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    diagnostics: str = response.json()["issue"][0]["diagnostics"]
    return diagnostics


async def subscribed_topic(hub: RunningHub) -> str:
    """A topic an IRA subscribe created (IRA sessions start with a subscribe)."""
    topic = new_topic()
    assert (await post_form(hub.hub_url, ira_form(topic))).status_code == 202
    return topic


# Subscriptions.


@pytest.mark.parametrize(
    ("change", "remove", "message"),
    [
        pytest.param({}, "subscriber.name", "subscriber.name", id="no-name"),
        pytest.param(
            {"subscriber.name": " "}, None, "subscriber.name", id="blank-name"
        ),
        pytest.param(
            {"hub.events": "Patient-open,SyncError"},
            None,
            "DiagnosticReport-open",
            id="no-report-events",
        ),
        pytest.param(
            {"hub.events": IRA_EVENTS.replace(",SyncError", "")},
            None,
            "SyncError",
            id="no-syncerror",
        ),
        pytest.param(
            {"hub.events": IRA_EVENTS.replace("DiagnosticReport-select,", "")},
            None,
            "DiagnosticReport-select",
            id="no-select",
        ),
        pytest.param(
            {"hub.channel.type": "webhook", "hub.callback": "https://app.example/cb"},
            None,
            "websocket",
            id="webhook",
        ),
    ],
)
async def test_ira_subscribe_refuses_what_ira_refuses(
    ira_hub: RunningHub, change: dict[str, str], remove: str | None, message: str
) -> None:
    form = ira_form(new_topic(), **change)
    if remove is not None:
        del form[remove]

    diagnostics = refused(await post_form(ira_hub.hub_url, form))

    assert message in diagnostics


async def test_ira_subscribe_accepts_the_ira_subscription_with_more_events(
    ira_hub: RunningHub,
) -> None:
    topic = new_topic()
    form = ira_form(
        topic, **{"hub.events": f"{IRA_EVENTS},diagnosticreport-open,Patient-open"}
    )

    response = await post_form(ira_hub.hub_url, form)

    assert response.status_code == 202, response.text
    client = ira_hub.client()
    async with client.connect(response.json()["hub.channel.endpoint"]) as connection:
        events = connection.confirmation["hub.events"].split(",")
    assert sorted(events) == sorted([*IRA_EVENTS.split(","), "Patient-open"])


async def test_ira_unsubscribe_needs_no_subscriber_name(ira_hub: RunningHub) -> None:
    topic = new_topic()
    endpoint = (await post_form(ira_hub.hub_url, ira_form(topic))).json()[
        "hub.channel.endpoint"
    ]
    form = {
        "hub.channel.type": "websocket",
        "hub.mode": "unsubscribe",
        "hub.topic": topic,
        "hub.channel.endpoint": endpoint,
    }

    response = await post_form(ira_hub.hub_url, form)

    assert response.status_code == 202, response.text
    assert response.json() == {"hub.channel.endpoint": endpoint}


async def test_ira_unsubscribe_of_an_endpoint_matching_nothing_is_400(
    ira_hub: RunningHub,
) -> None:
    topic = new_topic()
    endpoint = (await post_form(ira_hub.hub_url, ira_form(topic))).json()[
        "hub.channel.endpoint"
    ]
    form = {
        "hub.channel.type": "websocket",
        "hub.mode": "unsubscribe",
        "hub.topic": topic,
        "hub.channel.endpoint": endpoint + "x",
    }

    diagnostics = refused(await post_form(ira_hub.hub_url, form), 400)

    assert "matches none" in diagnostics


async def test_without_ira_mode_the_same_subscriptions_are_accepted(
    hub: RunningHub,
) -> None:
    form = subscribe_form(new_topic(), "Patient-open")

    assert (await post_form(hub.hub_url, form)).status_code == 202


# Events.


@pytest.mark.parametrize(
    ("context", "missing"),
    [
        pytest.param([report(), patient()], "study", id="no-study"),
        pytest.param([report(), study()], "patient", id="no-patient"),
        pytest.param([patient(), study()], "report", id="no-report"),
    ],
)
async def test_ira_report_open_needs_report_patient_and_study(
    ira_hub: RunningHub, context: list[dict[str, Any]], missing: str
) -> None:
    topic = await subscribed_topic(ira_hub)
    body = notification(topic, "DiagnosticReport-open", context)

    diagnostics = refused(await post_event(ira_hub.hub_url, body))

    assert repr(missing) in diagnostics
    assert (await ira_hub.client().current_context(topic))["context"] == []


async def test_without_ira_mode_a_report_open_needs_no_study(hub: RunningHub) -> None:
    body = notification(new_topic(), "DiagnosticReport-open", [report(), patient()])

    assert (await post_event(hub.hub_url, body)).status_code == 202


async def test_ira_event_on_a_topic_no_subscribe_created_is_refused(
    ira_hub: RunningHub,
) -> None:
    body = notification(
        new_topic(), "DiagnosticReport-open", [report(), patient(), study()]
    )

    diagnostics = refused(await post_event(ira_hub.hub_url, body))

    assert "topic" in diagnostics


@pytest.mark.parametrize(
    ("event", "context"),
    [
        pytest.param("Patient-open", [patient()], id="patient-open"),
        pytest.param("ImagingStudy-open", [study(), patient()], id="study-open"),
        pytest.param("com.example.ping", [], id="custom-event"),
    ],
)
async def test_ira_hub_processes_every_valid_event(
    ira_hub: RunningHub, event: str, context: list[dict[str, Any]]
) -> None:
    topic = await subscribed_topic(ira_hub)

    response = await post_event(ira_hub.hub_url, notification(topic, event, context))

    assert response.status_code == 202, response.text


async def test_ira_report_flow_open_update_select_close(ira_hub: RunningHub) -> None:
    topic = new_topic()
    client = ira_hub.client()
    creator = await client.subscribe(
        topic, IRA_EVENTS.split(","), subscriber_name="report creator"
    )
    display = await client.subscribe(
        topic, IRA_EVENTS.split(","), subscriber_name="image display"
    )

    async with client.connect(creator) as created, client.connect(display) as viewer:
        opened = notification(
            topic, "DiagnosticReport-open", [report(), patient(), study()]
        )
        assert await client.send(opened) == 202
        version = (await viewer.next_event())["event"]["context.versionId"]
        assert (await created.next_event())["event"]["context.versionId"] == version

        # IRA's examples add findings with POST entries.
        finding = {"resourceType": "Observation", "id": "o1", "status": "preliminary"}
        bundle = {
            "resourceType": "Bundle",
            "id": "b1",
            "type": "transaction",
            "entry": [{"request": {"method": "POST"}, "resource": finding}],
        }
        update = notification(
            topic,
            "DiagnosticReport-update",
            [report(), {"key": "updates", "resource": bundle}],
        )
        update["event"]["context.versionId"] = version
        assert await client.send(update) == 202
        updated = await viewer.next_event()
        assert updated["event"]["context.priorVersionId"] == version
        assert updated["event"]["context"][1]["resource"] == bundle
        await created.next_event()

        context = await client.current_context(topic)
        assert context["context.versionId"] == updated["event"]["context.versionId"]
        [content] = [e for e in context["context"] if e["key"] == "content"]
        assert content["resource"]["entry"] == [
            {"fullUrl": "Observation/o1", "resource": finding}
        ]

        # IRA's select: an array of the selected resources.
        select = notification(
            topic,
            "DiagnosticReport-select",
            [
                report(),
                {
                    "key": "select",
                    "resource": [{"reference": "Observation/o1"}, {"reference": "X/1"}],
                },
            ],
        )
        assert await client.send(select) == 206
        selected = await viewer.next_event()
        assert selected["event"]["context"][1]["resource"] == [
            {"reference": "Observation/o1"}
        ]
        await created.next_event()

        close = notification(topic, "DiagnosticReport-close", [report(), patient()])
        assert await client.send(close) == 202
        assert (await viewer.next_event())["id"] == close["id"]

    assert await client.current_context(topic) == {"context.type": "", "context": []}
    update["id"] = "after-close"
    response = await post_event(ira_hub.hub_url, update)
    refused(response, 409)


async def test_ira_hub_originates_no_open_events(ira_hub: RunningHub) -> None:
    topic = new_topic()
    client = ira_hub.client()
    # Granted Patient-open but not Encounter-open: outside IRA mode this
    # subscriber would get a hub-made Patient-open for the encounter's patient.
    endpoint = await client.subscribe(
        topic, [*IRA_EVENTS.split(","), "Patient-open"], subscriber_name="worklist"
    )

    async with client.connect(endpoint) as connection:
        encounter_open = notification(
            topic, "Encounter-open", [encounter("e1"), patient("p9")]
        )
        assert await client.send(encounter_open) == 202
        report_open = notification(
            topic, "DiagnosticReport-open", [report(), patient("p9"), study()]
        )
        assert await client.send(report_open) == 202

        # Deliveries keep their order: the first one is the report's open.
        event = await connection.next_event()

    assert event["id"] == report_open["id"]
    assert event["event"]["hub.event"] == "DiagnosticReport-open"
