"""The pure current-context rules of ``fhircast_hub.context``, without a server."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from builders import encounter, notification, patient, report, study
from fhircast_hub.context import (
    Change,
    TopicContext,
    apply_event,
    current_context,
    replay_events,
)
from fhircast_hub.errors import Conflict, InvalidRequest, VersionMismatch
from fhircast_hub.events.validation import parse_notification


TOPIC = "topic-1"


def versions() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"v{next(counter)}"


def apply(
    state: TopicContext,
    event: str,
    context: list[dict[str, Any]],
    new_version: Callable[[], str] | None = None,
    *,
    derive_opens: bool = True,
    **event_fields: Any,
) -> Change:
    body = notification(TOPIC, event, context)
    body["event"].update(event_fields)
    change = apply_event(
        state,
        parse_notification(body),
        new_version or versions(),
        derive_opens=derive_opens,
    )
    assert change is not None
    return change


def open_report(
    state: TopicContext | None = None,
    report_id: str = "r1",
    new_version: Callable[[], str] | None = None,
) -> TopicContext:
    context = [report(report_id), patient(), study()]
    return apply(
        state or TopicContext(), "DiagnosticReport-open", context, new_version
    ).state


def update(
    state: TopicContext,
    entries: list[dict[str, Any]],
    *,
    version: str | None = None,
    report_id: str = "r1",
    new_version: Callable[[], str] | None = None,
    **event_fields: Any,
) -> Change:
    bundle = {"resourceType": "Bundle", "id": "b1", "type": "transaction"}
    bundle["entry"] = entries
    context = [report(report_id), {"key": "updates", "resource": bundle}]
    fields = dict(event_fields)
    if version is not None or not fields:
        fields["context.versionId"] = version or version_of(state, report_id)
    return apply(
        state, "DiagnosticReport-update", context, new_version or versions(), **fields
    )


def select(state: TopicContext, *entries: dict[str, Any]) -> Change:
    return apply(state, "DiagnosticReport-select", [report(), *entries])


def version_of(state: TopicContext, report_id: str = "r1") -> str:
    found = state.find(f"DiagnosticReport/{report_id}")
    assert found is not None
    return found.version_id


def put(resource: dict[str, Any], method: str = "PUT") -> dict[str, Any]:
    return {"request": {"method": method}, "resource": resource}


def observation(observation_id: str = "o1", **fields: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": observation_id, **fields}


def content_of(state: TopicContext, report_id: str = "r1") -> dict[str, Any]:
    found = state.find(f"DiagnosticReport/{report_id}")
    assert found is not None
    return found.content


# Events that change no context.


@pytest.mark.parametrize(
    ("event", "context"),
    [
        pytest.param(
            "SyncError",
            [
                {
                    "key": "operationoutcome",
                    "resource": {"resourceType": "OperationOutcome"},
                }
            ],
            id="catalog-event-without-anchor",
        ),
        pytest.param("com.example.ping", [], id="custom-event"),
    ],
)
def test_apply_event_changes_nothing_for_events_without_an_anchor(
    event: str, context: list[dict[str, Any]]
) -> None:
    parsed = parse_notification(notification(TOPIC, event, context))

    assert apply_event(TopicContext(), parsed, versions()) is None


# Opens.


def test_open_assigns_a_version_and_becomes_current() -> None:
    body = notification(TOPIC, "Patient-open", [patient("p1")])
    parsed = parse_notification(body)

    change = apply_event(TopicContext(), parsed, versions())

    assert change is not None and change.status == 202
    assert change.distributed["event"]["context.versionId"] == "v1"
    assert change.state.current == "Patient/p1"
    assert "context.versionId" not in parsed.body["event"], "the input is not changed"


def test_open_keeps_earlier_contexts_open_and_leaves_the_input_state_alone() -> None:
    first = open_report(report_id="r1")
    before = copy.deepcopy(first)

    second = open_report(first, "r2")

    assert [c.key for c in second.opens] == [
        "DiagnosticReport/r1",
        "DiagnosticReport/r2",
    ]
    assert second.current == "DiagnosticReport/r2"
    assert first == before


def test_reopen_makes_current_with_new_version_and_content_intact() -> None:
    new_version = versions()
    state = open_report(report_id="r1", new_version=new_version)
    state = update(state, [put(observation())], new_version=new_version).state
    state = open_report(state, "r2", new_version)

    state = open_report(state, "r1", new_version)

    assert state.current == "DiagnosticReport/r1"
    assert version_of(state, "r1") == "v4"
    assert content_of(state, "r1") == {"Observation/o1": observation()}
    assert [c.key for c in state.opens][-1] == "DiagnosticReport/r1"


# Closes.


def test_close_of_the_current_context_leaves_it_empty_without_fallback() -> None:
    state = open_report(open_report(report_id="r1"), "r2")

    state = apply(state, "DiagnosticReport-close", [report("r2"), patient()]).state

    assert state.current is None
    assert [c.key for c in state.opens] == ["DiagnosticReport/r1"]
    assert current_context(state) == {"context.type": "", "context": []}


def test_close_of_a_context_that_is_not_current_keeps_the_current_one() -> None:
    state = open_report(open_report(report_id="r1"), "r2")

    change = apply(state, "DiagnosticReport-close", [report("r1"), patient()])

    assert change.state.current == "DiagnosticReport/r2"
    assert change.state.find("DiagnosticReport/r1") is None
    assert change.distributed["event"]["hub.event"] == "DiagnosticReport-close"


def test_close_discards_the_content_of_its_context() -> None:
    state = update(open_report(), [put(observation())]).state
    state = apply(state, "DiagnosticReport-close", [report(), patient()]).state

    state = open_report(state)

    assert content_of(state) == {}


@pytest.mark.parametrize(
    ("event", "context"),
    [
        pytest.param("DiagnosticReport-close", [report(), patient()], id="close"),
        pytest.param(
            "DiagnosticReport-update",
            [report(), {"key": "updates", "resource": {"resourceType": "Bundle"}}],
            id="update",
        ),
        pytest.param(
            "DiagnosticReport-select",
            [report(), {"key": "select", "reference": {"reference": "Patient/p1"}}],
            id="select",
        ),
    ],
)
def test_events_on_a_context_that_is_not_open_are_conflicts(
    event: str, context: list[dict[str, Any]]
) -> None:
    with pytest.raises(Conflict, match="DiagnosticReport/r1"):
        apply(TopicContext(), event, context, **{"context.versionId": "v1"})


# Updates.


def test_update_makes_a_new_version_and_names_the_prior_one() -> None:
    state = open_report()

    change = update(state, [put(observation())], new_version=lambda: "v2")

    event = change.distributed["event"]
    assert event["context.versionId"] == "v2"
    assert event["context.priorVersionId"] == "v1"
    assert event["context"][1]["resource"]["id"] == "b1", "the same Bundle"
    assert version_of(change.state) == "v2"
    assert content_of(change.state) == {"Observation/o1": observation()}


def test_update_accepts_the_plain_version_id_spelling_and_sends_the_context_one() -> (
    None
):
    state = open_report()

    change = update(state, [], versionId="v1", new_version=lambda: "v2")

    event = change.distributed["event"]
    assert "versionId" not in event
    assert (event["context.versionId"], event["context.priorVersionId"]) == ("v2", "v1")


def test_update_replaces_a_prior_version_id_that_the_sender_supplied() -> None:
    state = open_report()

    change = update(
        state,
        [],
        version="v1",
        new_version=lambda: "v2",
        **{"context.priorVersionId": "made-up"},
    )

    assert change.distributed["event"]["context.priorVersionId"] == "v1"


def test_update_with_a_stale_version_is_refused() -> None:
    state = update(open_report(), [put(observation())], new_version=lambda: "v2").state

    with pytest.raises(VersionMismatch, match="'v1'.*'v2'"):
        update(state, [put(observation("o2"))], version="v1")


def test_update_of_an_open_report_that_is_not_current_is_allowed() -> None:
    state = open_report(open_report(report_id="r1"), "r2")

    change = update(state, [put(observation())], report_id="r1")

    assert change.state.current == "DiagnosticReport/r2"
    assert content_of(change.state, "r1") == {"Observation/o1": observation()}
    assert content_of(change.state, "r2") == {}


def test_update_applies_put_post_and_delete_in_order() -> None:
    state = update(
        open_report(), [put(observation("o1")), put(observation("o2"))]
    ).state

    change = update(
        state,
        [
            {"fullUrl": "Observation/o1", "request": {"method": "DELETE"}},
            {
                "fullUrl": "/o2",
                "request": {"method": "delete", "url": "Observation/o2"},
            },
            put(observation("o3"), method="POST"),
            put(observation("o3", status="final")),
            {
                "fullUrl": "http://example.org/fhir/Observation/o9/",
                "request": {"method": "DELETE"},
            },
        ],
    )

    assert content_of(change.state) == {
        "Observation/o3": observation("o3", status="final")
    }


def test_update_may_change_the_opened_report_and_keep_identifiers_of_others() -> None:
    same_patient = copy.deepcopy(patient()["resource"]) | {"gender": "female"}
    changed_report = report()["resource"] | {"status": "final"}

    change = update(open_report(), [put(same_patient), put(changed_report)])

    assert content_of(change.state)["Patient/p1"]["gender"] == "female"
    assert content_of(change.state)["DiagnosticReport/r1"]["status"] == "final"


BAD_ENTRIES = [
    pytest.param("not-an-object", "entry 1 to be an object", id="entry-not-object"),
    pytest.param({"resource": observation("o2")}, "request.method", id="no-request"),
    pytest.param(
        {"request": {"method": 5}, "resource": observation("o2")},
        "request.method",
        id="method-not-string",
    ),
    pytest.param(
        {"request": {"method": "PATCH"}, "resource": observation("o2")},
        "'PATCH'",
        id="patch",
    ),
    pytest.param(
        put({"resourceType": "Observation"}), "resourceType and id", id="put-without-id"
    ),
    pytest.param(put("not-a-resource"), "resourceType and id", id="put-no-resource"),
    pytest.param(
        {"request": {"method": "DELETE"}}, "fullUrl or request.url", id="delete-no-url"
    ),
    pytest.param(
        {"fullUrl": "urn:uuid:1234", "request": {"method": "DELETE"}},
        "fullUrl or request.url",
        id="delete-no-type",
    ),
    pytest.param(
        {"fullUrl": "Patient/p1", "request": {"method": "DELETE"}},
        "deletes Patient/p1",
        id="delete-patient",
    ),
    pytest.param(
        {"request": {"method": "DELETE", "url": "ImagingStudy/s1"}},
        "deletes ImagingStudy/s1",
        id="delete-study",
    ),
    pytest.param(
        {"fullUrl": "DiagnosticReport/r1", "request": {"method": "DELETE"}},
        "deletes DiagnosticReport/r1",
        id="delete-report",
    ),
    pytest.param(
        put(
            {
                "resourceType": "Patient",
                "id": "p1",
                "identifier": [{"system": "urn:mrn", "value": "other"}],
            }
        ),
        "identifiers of Patient/p1",
        id="patient-identifier-changed",
    ),
    pytest.param(
        put({"resourceType": "Patient", "id": "p1", "gender": "male"}),
        "identifiers of Patient/p1",
        id="patient-identifier-dropped",
    ),
    pytest.param(
        put(
            {
                "resourceType": "ImagingStudy",
                "id": "s1",
                "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:1.2"}],
            }
        ),
        "identifiers of ImagingStudy/s1",
        id="study-identifier-added",
    ),
]


@pytest.mark.parametrize(("bad_entry", "message"), BAD_ENTRIES)
def test_update_with_a_bad_entry_is_refused_and_applies_nothing(
    bad_entry: Any, message: str
) -> None:
    state = update(open_report(), [put(observation("o1"))]).state
    before = copy.deepcopy(state)

    with pytest.raises(InvalidRequest, match=message):
        update(state, [put(observation("o1", status="final")), bad_entry])

    assert state == before


def test_update_with_entry_not_an_array_is_refused() -> None:
    state = open_report()

    body = notification(
        TOPIC,
        "DiagnosticReport-update",
        [
            report(),
            {"key": "updates", "resource": {"resourceType": "Bundle", "entry": {}}},
        ],
    )
    body["event"]["context.versionId"] = "v1"

    with pytest.raises(InvalidRequest, match="'entry' to be an array"):
        apply_event(state, parse_notification(body), versions())


def test_update_without_entries_still_makes_a_new_version() -> None:
    state = open_report()

    body = notification(
        TOPIC,
        "DiagnosticReport-update",
        [report(), {"key": "updates", "resource": {"resourceType": "Bundle"}}],
    )
    body["event"]["context.versionId"] = "v1"
    change = apply_event(state, parse_notification(body), lambda: "v2")

    assert change is not None
    assert version_of(change.state) == "v2"
    assert content_of(change.state) == {}


# Selects.


def selection(reference: str) -> dict[str, Any]:
    return {"key": "select", "reference": {"reference": reference}}


def test_select_of_known_resources_is_distributed_as_sent() -> None:
    state = update(open_report(), [put(observation("o1"))]).state

    change = select(state, selection("Observation/o1"), selection("Patient/p1"))

    assert change.status == 202
    assert change.distributed["event"]["context"][1:] == [
        selection("Observation/o1"),
        selection("Patient/p1"),
    ]
    assert change.state == state


def test_select_drops_unknown_resources_and_answers_206() -> None:
    state = update(open_report(), [put(observation("o1"))]).state

    change = select(state, selection("Observation/o1"), selection("Observation/nope"))

    assert change.status == 206
    assert change.distributed["event"]["context"] == [
        report(),
        selection("Observation/o1"),
    ]


def test_select_as_an_ira_resource_array_keeps_only_known_items() -> None:
    state = update(open_report(), [put(observation("o1"))]).state
    entry = {
        "key": "select",
        "resource": [
            {"reference": "Observation/o1"},
            {"reference": "Observation/nope"},
            observation("o1"),
            observation("gone"),
        ],
    }

    change = select(state, entry)

    assert change.status == 206
    assert change.distributed["event"]["context"][1] == {
        "key": "select",
        "resource": [{"reference": "Observation/o1"}, observation("o1")],
    }


def test_select_passes_items_naming_no_resource_through_as_sent() -> None:
    # The hub checks the ids it relies on and nothing more (DESIGN.md item 10).
    state = update(open_report(), [put(observation("o1"))]).state
    entry = {
        "key": "select",
        "resource": [{"reference": "Observation/o1"}, {"display": "x"}, 42],
    }

    change = select(state, entry)

    assert change.status == 202
    assert change.distributed["event"]["context"][1] == entry


def test_select_entry_holding_known_and_unknown_fields_keeps_the_known_field() -> None:
    state = update(open_report(), [put(observation("o1"))]).state
    entry = {
        "key": "select",
        "reference": {"reference": "Observation/nope"},
        "resource": observation("o1"),
    }

    change = select(state, entry)

    assert change.status == 206
    assert change.distributed["event"]["context"][1] == {
        "key": "select",
        "resource": observation("o1"),
    }


def test_select_knows_resources_the_open_named_by_reference() -> None:
    context = [
        report(),
        patient(),
        {"key": "study", "reference": {"reference": "ImagingStudy/s9"}},
    ]
    state = apply(TopicContext(), "DiagnosticReport-open", context).state

    change = select(state, selection("ImagingStudy/s9"))

    assert change.status == 202


def test_select_where_no_selection_is_known_distributes_nothing() -> None:
    state = open_report()

    change = select(state, selection("Observation/nope"), selection("Observation/no"))

    assert change.status == 206
    assert change.distributed is None


def test_select_in_an_open_context_that_is_not_current_is_a_conflict() -> None:
    state = open_report(open_report(report_id="r1"), "r2")

    with pytest.raises(Conflict, match="not current"):
        select(state, selection("Patient/p1"))


# Derived opens.


def test_encounter_open_implies_a_patient_open_once() -> None:
    change = apply(TopicContext(), "Encounter-open", [encounter("e1"), patient("p1")])

    [derived] = change.derived
    assert derived.unless == "Encounter-open"
    assert derived.event["event"]["hub.event"] == "Patient-open"
    assert derived.event["event"]["context"] == [patient("p1")]
    assert derived.event["event"]["hub.topic"] == TOPIC
    assert derived.event["id"] != change.distributed["id"]

    again = apply(change.state, "Encounter-open", [encounter("e2"), patient("p1")])
    assert again.derived == ()


def test_report_open_implies_patient_and_study_opens() -> None:
    change = apply(
        TopicContext(), "DiagnosticReport-open", [report(), patient(), study()]
    )

    opened = {
        d.event["event"]["hub.event"]: d.event["event"]["context"]
        for d in change.derived
    }
    assert opened == {
        "Patient-open": [patient()],
        "ImagingStudy-open": [patient(), study()],
    }


def test_no_open_is_implied_for_a_resource_that_is_open_itself() -> None:
    state = apply(TopicContext(), "Patient-open", [patient("p1")]).state

    change = apply(state, "Encounter-open", [encounter("e1"), patient("p1")])

    assert change.derived == ()


def test_no_open_is_implied_for_a_reference_or_for_the_event_s_own_type() -> None:
    by_reference = {"key": "patient", "reference": {"reference": "Patient/p1"}}

    change = apply(TopicContext(), "Encounter-open", [encounter(), by_reference])

    assert change.derived == ()
    assert apply(TopicContext(), "Patient-open", [patient()]).derived == ()


def test_no_open_is_implied_without_derive_opens() -> None:
    change = apply(
        TopicContext(),
        "Encounter-open",
        [encounter(), patient()],
        derive_opens=False,
    )

    assert change.derived == ()
    assert change.state.announced == []


def test_close_of_a_resource_only_announced_ends_its_announcement() -> None:
    state = apply(TopicContext(), "Encounter-open", [encounter(), patient("p1")]).state

    change = apply(state, "Patient-close", [patient("p1")])

    assert change.state.announced == []
    assert change.state.current == "Encounter/e1"
    assert change.distributed["event"]["hub.event"] == "Patient-close"
    again = apply(change.state, "Encounter-open", [encounter("e2"), patient("p1")])
    assert [d.event["event"]["hub.event"] for d in again.derived] == ["Patient-open"]


def test_close_of_a_resource_both_open_and_announced_ends_both() -> None:
    state = apply(TopicContext(), "Encounter-open", [encounter(), patient("p1")]).state
    state = apply(state, "Patient-open", [patient("p1")]).state

    state = apply(state, "Patient-close", [patient("p1")]).state

    assert state.announced == []
    assert state.find("Patient/p1") is None


# Get Current Context and replay.


def test_current_context_renders_content_as_a_collection_without_requests() -> None:
    state = update(
        open_report(), [put(observation("o1"))], new_version=lambda: "v2"
    ).state

    answer = current_context(state)

    assert answer["context.type"] == "DiagnosticReport"
    assert answer["context.versionId"] == "v2"
    assert answer["context"][:3] == [report(), patient(), study()]
    assert answer["context"][3] == {
        "key": "content",
        "resource": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": "Observation/o1", "resource": observation("o1")}],
        },
    }


def test_current_context_of_an_empty_topic() -> None:
    assert current_context(TopicContext()) == {"context.type": "", "context": []}


def test_replay_gives_the_latest_open_of_each_type_in_order_with_versions_now() -> None:
    new_version = versions()
    state = apply(TopicContext(), "Patient-open", [patient("p1")], new_version).state
    state = open_report(state, "r1", new_version)
    state = apply(state, "Patient-open", [patient("p2")], new_version).state
    state = update(state, [], report_id="r1", new_version=new_version).state

    replay = replay_events(state, lambda name: True)

    assert [e["event"]["hub.event"] for e in replay] == [
        "DiagnosticReport-open",
        "Patient-open",
    ]
    assert replay[0]["event"]["context.versionId"] == "v4"
    assert replay[1]["event"]["context"] == [patient("p2")]


def test_replay_skips_opens_the_subscriber_was_not_granted() -> None:
    new_version = versions()
    state = apply(TopicContext(), "Patient-open", [patient("p1")], new_version).state
    state = open_report(state, "r1", new_version)

    replay = replay_events(state, lambda name: name == "patient-open")

    assert [e["event"]["hub.event"] for e in replay] == ["Patient-open"]


def test_replay_tells_a_late_subscriber_of_resources_an_open_named() -> None:
    new_version = versions()
    state = open_report(TopicContext(), "r1", new_version)

    replay = replay_events(state, lambda name: name == "patient-open")

    # The report's open is not granted; the patient it names is sent once,
    # as a hub-made open, although the patient was never opened by itself.
    assert [e["event"]["hub.event"] for e in replay] == ["Patient-open"]
    assert replay[0]["event"]["context"] == [patient()]
    assert replay[0]["id"] != state.opens[0].event["id"]


def test_replay_makes_no_implied_open_of_a_resource_open_in_its_own_right() -> None:
    new_version = versions()
    state = apply(TopicContext(), "Patient-open", [patient()], new_version).state
    state = open_report(state, "r1", new_version)

    replay = replay_events(state, lambda name: name == "patient-open")

    assert len(replay) == 1
    assert replay[0]["id"] == state.opens[0].event["id"]


def test_rules_never_modify_the_state_or_the_event_they_are_given() -> None:
    # Stores hand out their stored state and keep what the rules return, so
    # the rules must treat both as values.
    new_version = versions()
    state = apply(TopicContext(), "Patient-open", [patient("p1")], new_version).state
    state = open_report(state, "r1", new_version)
    state = update(state, [put(observation("o1"))], new_version=new_version).state
    steps: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
        ("Patient-open", [patient("p1")], {}),
        ("DiagnosticReport-open", [report("r1"), patient(), study()], {}),
        (
            "DiagnosticReport-update",
            [
                report("r1"),
                {
                    "key": "updates",
                    "resource": {
                        "resourceType": "Bundle",
                        "type": "transaction",
                        "entry": [
                            put(observation("o2")),
                            {
                                "fullUrl": "Observation/o1",
                                "request": {"method": "DELETE"},
                            },
                        ],
                    },
                },
            ],
            {"context.versionId": version_of(state, "r1")},
        ),
        ("DiagnosticReport-select", [report("r1"), selection("Observation/o1")], {}),
        ("DiagnosticReport-close", [report("r1"), patient()], {}),
        ("Patient-close", [patient("p1")], {}),
    ]

    for event, context, fields in steps:
        body = notification(TOPIC, event, context)
        body["event"].update(fields)
        before_state, before_body = copy.deepcopy(state), copy.deepcopy(body)

        change = apply_event(state, parse_notification(body), new_version)

        assert change is not None
        assert state == before_state, event
        assert body == before_body, event
