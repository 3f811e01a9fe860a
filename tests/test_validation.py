"""Unit tests of event-notification validation (no server)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhircast_hub.errors import InvalidRequest
from fhircast_hub.events.validation import (
    Notification,
    context_entries,
    entry_resource_id,
    parse_notification,
    requested_version_id,
)


def body(event: str = "Patient-open", context: Any = None, **extra: Any) -> Any:
    if context is None:
        context = [
            {"key": "patient", "resource": {"resourceType": "Patient", "id": "p"}}
        ]
    return {
        "timestamp": "2024-01-01T00:00:00Z",
        "id": "e1",
        "event": {"hub.topic": "T", "hub.event": event, "context": context, **extra},
    }


def reference(key: str, target: str) -> dict[str, Any]:
    return {"key": key, "reference": {"reference": target}}


UPDATES = {"key": "updates", "resource": {"resourceType": "Bundle", "entry": []}}
OUTCOME = {"key": "operationoutcome", "resource": {"resourceType": "OperationOutcome"}}
PARAMETERS = {"key": "parameters", "resource": {"resourceType": "Parameters"}}


def test_parse_notification_keeps_the_body_and_canonicalizes_the_name() -> None:
    sent = body("patient-OPEN", extra_field=[1])
    original = copy.deepcopy(sent)

    notification = parse_notification(sent)

    assert sent == original
    assert notification.id == "e1"
    assert notification.timestamp == "2024-01-01T00:00:00Z"
    assert notification.topic == "T"
    assert notification.name.canonical == "Patient-open"
    assert notification.body["event"]["hub.event"] == "Patient-open"
    assert notification.body["event"]["extra_field"] == [1]
    assert notification.event is notification.body["event"]
    assert notification.context == sent["event"]["context"]
    assert notification.anchor_id == "p"


def test_parse_notification_accepts_the_topic_of_the_path() -> None:
    assert parse_notification(body(), topic="T").topic == "T"


def test_parse_notification_refuses_another_topic_in_the_path() -> None:
    with pytest.raises(InvalidRequest, match="differs"):
        parse_notification(body(), topic="U")


def test_parse_notification_custom_event_has_no_anchor_and_any_context() -> None:
    notification = parse_notification(body("com.example.ping", [{"key": "x"}]))

    assert notification.name.definition is None
    assert notification.anchor_id is None


def test_parse_notification_anchorless_catalog_event_has_no_anchor() -> None:
    assert parse_notification(body("Home-open", [])).anchor_id is None


def _drop(path: tuple[str, ...]) -> Any:
    sent = body()
    container = sent
    for name in path[:-1]:
        container = container[name]
    del container[path[-1]]
    return sent


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        pytest.param([], "JSON object", id="array"),
        pytest.param("text", "JSON object", id="string"),
        pytest.param(_drop(("timestamp",)), "'timestamp'.*nothing", id="no-timestamp"),
        pytest.param({**body(), "timestamp": " "}, "'timestamp'", id="blank-time"),
        pytest.param({**body(), "id": 7}, "'id'.*7", id="number-id"),
        pytest.param(_drop(("id",)), "'id'", id="no-id"),
        pytest.param(_drop(("event",)), "'event'", id="no-event"),
        pytest.param({**body(), "event": "x"}, "'event'", id="event-string"),
        pytest.param(_drop(("event", "hub.topic")), "hub.topic", id="no-topic"),
        pytest.param(_drop(("event", "hub.event")), "event name", id="no-name"),
        pytest.param(body("ient-op"), "unknown event", id="partial-name"),
        pytest.param(_drop(("event", "context")), "nothing", id="no-context"),
        pytest.param(body(context={"key": "p"}), "an object", id="context-object"),
        pytest.param(body(context=[1]), "array of objects", id="entry-number"),
        pytest.param(body(context=[{"key": 1}]), "'key'", id="key-number"),
        pytest.param(body(context=[{}]), "'key'", id="entry-no-key"),
        pytest.param(body(context=[]), r"missing \['patient'\]", id="missing-key"),
        pytest.param(
            body(context=[{"key": "patient", "resource": {"id": ""}}]),
            "requires an id",
            id="anchor-empty-id",
        ),
        pytest.param(
            body(context=[{"key": "patient", "resource": {"id": 5}}]),
            "requires an id",
            id="anchor-number-id",
        ),
        pytest.param(
            body(context=[{"key": "patient"}]), "requires an id", id="anchor-no-value"
        ),
        pytest.param(
            body("Patient", context=[]), "unknown event", id="name-without-action"
        ),
    ],
)
def test_parse_notification_refuses(sent: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_notification(sent)


def test_parse_notification_update_needs_a_version_and_a_bundle() -> None:
    report = reference("report", "DiagnosticReport/r")
    with pytest.raises(InvalidRequest, match="context.versionId"):
        parse_notification(body("DiagnosticReport-update", [report, UPDATES]))
    for updates, shown in (
        ({"key": "updates"}, "nothing"),
        ({"key": "updates", "resource": {"resourceType": "Patient"}}, "a Patient"),
        ({"key": "updates", "resource": {}}, "an object"),
        ({"key": "updates", "resource": []}, "list"),
    ):
        with pytest.raises(InvalidRequest, match=f"Bundle.*{shown}"):
            parse_notification(
                body(
                    "DiagnosticReport-update",
                    [report, updates],
                    **{"context.versionId": "v1"},
                )
            )


@pytest.mark.parametrize("field", ["context.versionId", "versionId"])
def test_parse_notification_update_reads_either_version_spelling(field: str) -> None:
    report = reference("report", "DiagnosticReport/r")

    notification = parse_notification(
        body("DiagnosticReport-update", [report, UPDATES], **{field: "v1"})
    )

    assert requested_version_id(notification.event) == "v1"
    assert notification.anchor_id == "r"


def test_parse_notification_syncerror_needs_an_operation_outcome() -> None:
    assert parse_notification(body("syncerror", [OUTCOME])).name.canonical == (
        "SyncError"
    )
    wrong = {"key": "operationoutcome", "resource": {"resourceType": "Bundle"}}
    with pytest.raises(InvalidRequest, match="OperationOutcome.*a Bundle"):
        parse_notification(body("SyncError", [wrong]))
    with pytest.raises(InvalidRequest, match="OperationOutcome.*nothing"):
        parse_notification(body("SyncError", [{"key": "operationoutcome"}]))


@pytest.mark.parametrize("event", ["UserLogout", "userHibernate"])
def test_parse_notification_user_events_need_parameters(event: str) -> None:
    assert parse_notification(body(event, [PARAMETERS])).name.definition is not None
    with pytest.raises(InvalidRequest, match="parameters"):
        parse_notification(body(event, []))


def test_parse_notification_ira_asks_more_of_a_report_open() -> None:
    report = {"key": "report", "resource": {"id": "r"}}
    patient = {"key": "patient", "resource": {"id": "p"}}
    sent = body("DiagnosticReport-open", [report, patient])

    assert parse_notification(sent).anchor_id == "r"
    with pytest.raises(InvalidRequest, match=r"missing \['study'\]"):
        parse_notification(sent, ira=True)
    # Other events keep their FHIRcast rules in IRA mode.
    assert parse_notification(body(), ira=True).anchor_id == "p"


def test_context_entries_compare_keys_case_sensitively() -> None:
    context = [
        {"key": "patient", "n": 1},
        {"key": "Patient"},
        {"key": "patient", "n": 2},
    ]

    assert context_entries(context, "patient") == [context[0], context[2]]
    assert context_entries(context, "study") == []


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"resource": {"id": "a"}}, "a"),
        ({"resource": {"id": ""}}, None),
        ({"resource": {}}, None),
        ({"resource": {"id": "a"}, "reference": {"reference": "X/b"}}, "a"),
        ({"reference": {"reference": "Patient/b"}}, "b"),
        ({"reference": {"reference": "Patient/b/"}}, "b"),
        ({"reference": {"reference": "https://x.org/fhir/Patient/b"}}, "b"),
        ({"reference": {"reference": "Patient/b/_history/3"}}, "b"),
        ({"reference": {"reference": "Patient/"}}, None),
        ({"reference": {"reference": "/b"}}, None),
        ({"reference": {"reference": "Patient"}}, None),
        ({"reference": {"reference": 5}}, None),
        ({"reference": {}}, None),
        ({"reference": "Patient/b"}, None),
        ({}, None),
    ],
)
def test_entry_resource_id(entry: dict[str, Any], expected: str | None) -> None:
    assert entry_resource_id(entry) == expected


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"context.versionId": "a", "versionId": "b"}, "a"),
        ({"context.versionId": "", "versionId": "b"}, "b"),
        ({"context.versionId": 3}, None),
        ({}, None),
    ],
)
def test_requested_version_id(event: dict[str, Any], expected: str | None) -> None:
    assert requested_version_id(event) == expected


def test_notification_without_its_anchor_entry_has_no_anchor_id() -> None:
    notification = parse_notification(body())
    bare = Notification(
        notification.id,
        notification.timestamp,
        notification.topic,
        notification.name,
        body(context=[{"key": "encounter"}]),
    )

    assert bare.anchor_id is None
