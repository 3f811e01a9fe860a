"""Content sharing through a real hub: report versions, updates, selects, refusals."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import pytest

from builders import new_topic, notification, patient, post_event, sync_errors
from conftest import RunningHub, StartHub, spec_example
from fhircast_hub.client import Connection, HubClient


REPORT_EVENTS = [
    "DiagnosticReport-open",
    "DiagnosticReport-update",
    "DiagnosticReport-select",
    "DiagnosticReport-close",
]

# The topic and versionIds the specification's examples carry.
SPEC_TOPIC = "fdb2f928-5546-4f52-87a0-0648e9ded065"
SPEC_OPEN_VERSION = "b9574cb0-e9e5-4be1-8957-5fcb51ef33c1"
SPEC_UPDATED_VERSION = "efcac43a-ed38-49e4-8d79-73f78290292a"


def substitute(example: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """The example with the spec's topic and versionIds replaced by the hub's."""
    text = json.dumps(example)
    for old, new in mapping.items():
        text = text.replace(old, new)
    result: dict[str, Any] = json.loads(text)
    return result


def outcome(response: httpx2.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    diagnostics: str = body["issue"][0]["diagnostics"]
    return diagnostics


def report(report_id: str) -> dict[str, Any]:
    return {
        "key": "report",
        "resource": {"resourceType": "DiagnosticReport", "id": report_id},
    }


def study(study_id: str) -> dict[str, Any]:
    return {
        "key": "study",
        "resource": {
            "resourceType": "ImagingStudy",
            "id": study_id,
            "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{study_id}"}],
        },
    }


def report_context(report_id: str, patient_id: str = "p1") -> list[dict[str, Any]]:
    return [report(report_id), patient(patient_id), study(f"s-{report_id}")]


def observation(observation_id: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": observation_id, **fields}


def put(resource: dict[str, Any]) -> dict[str, Any]:
    return {"request": {"method": "PUT"}, "resource": resource}


def report_update(
    topic: str,
    report_id: str,
    version: str,
    entries: list[dict[str, Any]],
    *,
    bundle_id: str = "bundle-1",
) -> dict[str, Any]:
    bundle = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "transaction",
        "entry": entries,
    }
    context = [report(report_id), {"key": "updates", "resource": bundle}]
    body = notification(topic, "DiagnosticReport-update", context)
    body["event"]["context.versionId"] = version
    return body


def report_select(topic: str, report_id: str, *references: str) -> dict[str, Any]:
    selections = [
        {"key": "select", "reference": {"reference": reference}}
        for reference in references
    ]
    return notification(
        topic, "DiagnosticReport-select", [report(report_id), *selections]
    )


def content(context: dict[str, Any]) -> dict[str, Any]:
    """The ``content`` Bundle of a Get Current Context answer, checked for shape."""
    [entry] = [e for e in context["context"] if e["key"] == "content"]
    bundle: dict[str, Any] = entry["resource"]
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    assert all("request" not in item for item in bundle["entry"])
    return bundle


def content_resources(context: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{item['resource']['resourceType']}/{item['resource']['id']}": item["resource"]
        for item in content(context)["entry"]
    }


def opened_context(context: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in context["context"] if e["key"] != "content"]


async def watch(hub: RunningHub, topic: str) -> tuple[HubClient, Connection]:
    client = hub.client()
    endpoint = await client.subscribe(topic, REPORT_EVENTS, subscriber_name="viewer")
    return client, client.connect(endpoint)


async def send_ok(client: HubClient, body: dict[str, Any], status: int = 202) -> None:
    assert await client.send(body) == status


# The specification's examples, in order.


async def test_spec_examples_open_update_update_update_select_close(
    hub: RunningHub,
) -> None:
    topic = new_topic()
    client, viewer = await watch(hub, topic)
    mapping = {SPEC_TOPIC: topic}

    async with viewer:
        open_event = substitute(
            spec_example("stu3-3-6-1-DiagnosticReport-open-1.json"), mapping
        )
        await send_ok(client, open_event)
        opened = await viewer.next_event()
        mapping[SPEC_OPEN_VERSION] = opened["event"]["context.versionId"]
        assert opened["event"]["context"] == open_event["event"]["context"]

        context = await client.current_context(topic)
        assert context["context.type"] == "DiagnosticReport"
        assert context["context.versionId"] == mapping[SPEC_OPEN_VERSION]
        assert opened_context(context) == open_event["event"]["context"]
        assert content(context)["entry"] == []

        # update-1 is what a subscriber sends; update-2 is the same event as the
        # hub distributes it, with a new versionId and the prior one.
        update_1 = substitute(
            spec_example("stu3-3-6-3-DiagnosticReport-update-1.json"), mapping
        )
        await send_ok(client, update_1)
        updated = await viewer.next_event()
        new_version = updated["event"]["context.versionId"]
        assert new_version not in (mapping[SPEC_OPEN_VERSION], SPEC_UPDATED_VERSION)
        mapping[SPEC_UPDATED_VERSION] = new_version
        update_2 = substitute(
            spec_example("stu3-3-6-3-DiagnosticReport-update-2.json"), mapping
        )
        assert updated == update_2

        context = await client.current_context(topic)
        assert context["context.versionId"] == new_version
        assert opened_context(context) == open_event["event"]["context"]
        bundle = update_1["event"]["context"][2]["resource"]
        assert content_resources(context) == {
            f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"]
            for e in bundle["entry"]
        }

        # update-2 repeats update-1's id: 202, and it is neither applied nor
        # delivered again (the next delivery is update-3's).
        await send_ok(client, update_2)

        update_3 = substitute(
            spec_example("stu3-3-6-3-DiagnosticReport-update-3.json"), mapping
        )
        await send_ok(client, update_3)
        updated = await viewer.next_event()
        assert updated["id"] == update_3["id"]
        assert updated["event"]["context.priorVersionId"] == new_version
        third_version = updated["event"]["context.versionId"]
        assert third_version != new_version
        assert updated["event"]["context"] == update_3["event"]["context"]

        context = await client.current_context(topic)
        assert context["context.versionId"] == third_version
        resources = content_resources(context)
        assert sorted(resources) == [
            "DiagnosticReport/2402d3bd-e988-414b-b7f2-4322e86c9327",
            "ImagingStudy/7e9deb91-0017-4690-aebd-951cef34aba4",
        ]
        report_after = update_3["event"]["context"][2]["resource"]["entry"][1]
        assert (
            resources["DiagnosticReport/2402d3bd-e988-414b-b7f2-4322e86c9327"]
            == report_after["resource"]
        )
        assert opened_context(context) == open_event["event"]["context"]

        # The select names the Observation update-3 deleted and one never
        # shared: both unknown, so 206 and nothing to distribute.
        select = substitute(
            spec_example("stu3-3-6-4-DiagnosticReport-select-1.json"), mapping
        )
        await send_ok(client, select, 206)

        close = substitute(
            spec_example("stu3-3-6-2-DiagnosticReport-close-1.json"), mapping
        )
        await send_ok(client, close)
        closed = await viewer.next_event()
        assert closed["id"] == close["id"]

    assert await client.current_context(topic) == {"context.type": "", "context": []}


async def test_spec_select_example_after_update_1_sends_only_the_known_selection(
    hub: RunningHub,
) -> None:
    topic = new_topic()
    client, viewer = await watch(hub, topic)
    mapping = {SPEC_TOPIC: topic}

    async with viewer:
        await send_ok(
            client,
            substitute(
                spec_example("stu3-3-6-1-DiagnosticReport-open-1.json"), mapping
            ),
        )
        mapping[SPEC_OPEN_VERSION] = (await viewer.next_event())["event"][
            "context.versionId"
        ]
        await send_ok(
            client,
            substitute(
                spec_example("stu3-3-6-3-DiagnosticReport-update-1.json"), mapping
            ),
        )
        await viewer.next_event()
        version = (await client.current_context(topic))["context.versionId"]

        select = substitute(
            spec_example("stu3-3-6-4-DiagnosticReport-select-1.json"), mapping
        )
        await send_ok(client, select, 206)
        selected = await viewer.next_event()

    assert selected["id"] == select["id"]
    assert selected["event"]["context"] == select["event"]["context"][:3]
    assert (await client.current_context(topic))["context.versionId"] == version


async def test_update_replaces_a_prior_version_id_the_sender_supplied(
    hub: RunningHub,
) -> None:
    topic = new_topic()
    client, viewer = await watch(hub, topic)

    async with viewer:
        await client.publish(topic, "DiagnosticReport-open", report_context("r1"))
        version = (await viewer.next_event())["event"]["context.versionId"]
        body = report_update(topic, "r1", version, [put(observation("o1"))])
        body["event"]["context.priorVersionId"] = "a-version-the-hub-never-made"
        await send_ok(client, body)
        updated = await viewer.next_event()

    assert updated["event"]["context.priorVersionId"] == version
    assert updated["event"]["context.versionId"] not in (
        version,
        "a-version-the-hub-never-made",
    )


async def test_update_accepts_the_plain_version_id_spelling(hub: RunningHub) -> None:
    topic = new_topic()
    client, viewer = await watch(hub, topic)

    async with viewer:
        await client.publish(topic, "DiagnosticReport-open", report_context("r1"))
        version = (await viewer.next_event())["event"]["context.versionId"]
        body = report_update(topic, "r1", version, [put(observation("o1"))])
        body["event"]["versionId"] = body["event"].pop("context.versionId")
        await send_ok(client, body)
        updated = await viewer.next_event()

    assert "versionId" not in updated["event"]
    assert updated["event"]["context.priorVersionId"] == version
    assert updated["event"]["context"][1]["resource"]["id"] == "bundle-1"


# A whole reporting session.


async def test_reporting_session_with_two_reports(hub: RunningHub) -> None:
    topic = new_topic()
    client, viewer = await watch(hub, topic)
    versions: dict[str, str] = {}

    async def distributed(body: dict[str, Any], status: int = 202) -> dict[str, Any]:
        await send_ok(client, body, status)
        event = await viewer.next_event()
        assert event["id"] == body["id"]
        if "context.versionId" in event["event"]:
            report_id = event["event"]["context"][0]["resource"]["id"]
            versions[report_id] = event["event"]["context.versionId"]
        return event

    def opens(report_id: str, patient_id: str) -> dict[str, Any]:
        context = report_context(report_id, patient_id)
        return notification(topic, "DiagnosticReport-open", context)

    async with viewer:
        await distributed(opens("r1", "p1"))
        context = await client.current_context(topic)
        assert opened_context(context) == report_context("r1", "p1")
        assert context["context.versionId"] == versions["r1"]

        await distributed(opens("r2", "p2"))
        context = await client.current_context(topic)
        assert opened_context(context) == report_context("r2", "p2")

        # Switch back: re-opening r1 makes it current with a new version.
        r1_first_version = versions["r1"]
        await distributed(opens("r1", "p1"))
        assert versions["r1"] != r1_first_version
        context = await client.current_context(topic)
        assert opened_context(context) == report_context("r1", "p1")
        assert context["context.versionId"] == versions["r1"]

        await distributed(
            report_update(topic, "r1", versions["r1"], [put(observation("o1"))])
        )
        context = await client.current_context(topic)
        assert content_resources(context) == {"Observation/o1": observation("o1")}
        assert context["context.versionId"] == versions["r1"]

        # r2 is open but not current: its update works and r1 stays current.
        update_r2 = report_update(topic, "r2", versions["r2"], [put(observation("o2"))])
        updated = await distributed(update_r2)
        assert updated["event"]["context"][0] == report("r2")
        context = await client.current_context(topic)
        assert opened_context(context) == report_context("r1", "p1")
        assert content_resources(context) == {"Observation/o1": observation("o1")}
        assert context["context.versionId"] == versions["r1"]

        # Select only in the current report.
        selected = await distributed(report_select(topic, "r1", "Observation/o1"))
        assert selected["event"]["context"][1]["reference"] == {
            "reference": "Observation/o1"
        }
        response = await post_event(
            hub.hub_url, report_select(topic, "r2", "Observation/o2")
        )
        assert "not current" in outcome(response, 409)

        # Switch to r2: its content is intact.
        await distributed(opens("r2", "p2"))
        context = await client.current_context(topic)
        assert content_resources(context) == {"Observation/o2": observation("o2")}
        assert context["context.versionId"] == versions["r2"]

        # Closing r2, the current report, leaves no current context at all.
        await distributed(
            notification(topic, "DiagnosticReport-close", [report("r2"), patient("p2")])
        )
        assert await client.current_context(topic) == {
            "context.type": "",
            "context": [],
        }
        response = await post_event(
            hub.hub_url,
            report_update(topic, "r2", versions["r2"], [put(observation("o3"))]),
        )
        outcome(response, 409)

        # r1 is still open, with its content.
        await distributed(
            report_update(topic, "r1", versions["r1"], [put(observation("o4"))])
        )
        await distributed(opens("r1", "p1"))
        context = await client.current_context(topic)
        assert sorted(content_resources(context)) == [
            "Observation/o1",
            "Observation/o4",
        ]

        # r2's content was discarded by its close.
        await distributed(opens("r2", "p2"))
        context = await client.current_context(topic)
        assert content(context)["entry"] == []


# Refusals.


async def open_report(
    client: HubClient, viewer: Connection, topic: str, report_id: str = "r1"
) -> str:
    """Open a report with one Observation in its content; return its version."""
    await client.publish(topic, "DiagnosticReport-open", report_context(report_id))
    version: str = (await viewer.next_event())["event"]["context.versionId"]
    await send_ok(
        client, report_update(topic, report_id, version, [put(observation("o1"))])
    )
    version = (await viewer.next_event())["event"]["context.versionId"]
    return version


async def assert_refused_without_effect(
    hub: RunningHub,
    client: HubClient,
    viewer: Connection,
    topic: str,
    body: dict[str, Any],
    status: int,
) -> str:
    """Post a refused request; nothing is delivered and the context is unchanged."""
    before = await client.current_context(topic)

    diagnostics = outcome(await post_event(hub.hub_url, body), status)

    assert await client.current_context(topic) == before
    # Deliveries on a topic keep their order: the next one the viewer gets is
    # the next event accepted, so the refused one was never delivered.
    version = before["context.versionId"]
    follow_up = report_update(topic, "r1", version, [put(observation("o9"))])
    await send_ok(client, follow_up)
    assert (await viewer.next_event())["id"] == follow_up["id"]
    return diagnostics


async def test_update_with_a_stale_version_is_refused_with_400(
    hub: RunningHub,
) -> None:
    topic = new_topic()
    client, viewer = await watch(hub, topic)

    async with viewer:
        version = await open_report(client, viewer, topic)
        stale = report_update(topic, "r1", "not-" + version, [put(observation("o2"))])

        diagnostics = await assert_refused_without_effect(
            hub, client, viewer, topic, stale, 400
        )

    assert version in diagnostics


BAD_BUNDLES = [
    pytest.param(
        [put(observation("o1", status="final")), {"request": {"method": "DELETE"}}],
        id="good-put-then-delete-without-url",
    ),
    pytest.param(
        [put(observation("o2")), {"request": {"method": "PATCH"}}],
        id="good-put-then-patch",
    ),
    pytest.param(
        [
            put(observation("o2")),
            {"fullUrl": "Patient/p1", "request": {"method": "DELETE"}},
        ],
        id="delete-the-patient",
    ),
    pytest.param(
        [{"request": {"method": "DELETE", "url": "ImagingStudy/s-r1"}}],
        id="delete-the-study",
    ),
    pytest.param(
        [
            put(
                {
                    "resourceType": "Patient",
                    "id": "p1",
                    "identifier": [{"system": "urn:mrn", "value": "another-mrn"}],
                }
            )
        ],
        id="change-the-patient-mrn",
    ),
    pytest.param(
        [put(study("s-r1")["resource"] | {"identifier": []})],
        id="remove-the-study-uid",
    ),
]


@pytest.mark.parametrize("entries", BAD_BUNDLES)
async def test_update_with_a_bad_entry_is_refused_whole_with_400(
    hub: RunningHub, entries: list[dict[str, Any]]
) -> None:
    topic = new_topic()
    client, viewer = await watch(hub, topic)

    async with viewer:
        version = await open_report(client, viewer, topic)
        body = report_update(topic, "r1", version, entries)

        await assert_refused_without_effect(hub, client, viewer, topic, body, 400)


async def test_update_bundle_over_max_body_bytes_is_refused_with_413(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(max_body_bytes=4096)
    topic = new_topic()
    client, viewer = await watch(hub, topic)

    async with viewer:
        version = await open_report(client, viewer, topic)
        big = observation("o2", note=[{"text": "x" * 5000}])
        body = report_update(topic, "r1", version, [put(big)])

        diagnostics = await assert_refused_without_effect(
            hub, client, viewer, topic, body, 413
        )

    assert "4096" in diagnostics


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda topic: report_update(topic, "r2", "v", [put(observation("o2"))]),
            id="update",
        ),
        pytest.param(
            lambda topic: report_select(topic, "r2", "Observation/o1"), id="select"
        ),
        pytest.param(
            lambda topic: notification(
                topic, "DiagnosticReport-close", [report("r2"), patient()]
            ),
            id="close",
        ),
    ],
)
async def test_events_on_a_report_that_is_not_open_are_refused_with_409(
    hub: RunningHub, make: Any
) -> None:
    topic = new_topic()
    client, viewer = await watch(hub, topic)

    async with viewer:
        await open_report(client, viewer, topic)

        diagnostics = await assert_refused_without_effect(
            hub, client, viewer, topic, make(topic), 409
        )

    assert "DiagnosticReport/r2" in diagnostics


@pytest.mark.parametrize(
    ("selections", "expected"),
    [
        pytest.param(
            [
                {"key": "select", "reference": {"reference": "Observation/o1"}},
                {"key": "select", "reference": {"reference": "Observation/nope"}},
                {"key": "select", "reference": {"reference": "Patient/p1"}},
            ],
            [
                {"key": "select", "reference": {"reference": "Observation/o1"}},
                {"key": "select", "reference": {"reference": "Patient/p1"}},
            ],
            id="stu3-one-entry-per-resource",
        ),
        pytest.param(
            [
                {
                    "key": "select",
                    "resource": [
                        {"reference": "Observation/o1"},
                        {"reference": "Observation/nope"},
                        {"reference": "ImagingStudy/s-r1"},
                    ],
                }
            ],
            [
                {
                    "key": "select",
                    "resource": [
                        {"reference": "Observation/o1"},
                        {"reference": "ImagingStudy/s-r1"},
                    ],
                }
            ],
            id="ira-resource-array",
        ),
    ],
)
async def test_select_of_unknown_resources_answers_206_and_drops_them(
    hub: RunningHub,
    selections: list[dict[str, Any]],
    expected: list[dict[str, Any]],
) -> None:
    topic = new_topic()
    client, viewer = await watch(hub, topic)

    async with viewer:
        version = await open_report(client, viewer, topic)
        body = notification(
            topic, "DiagnosticReport-select", [report("r1"), *selections]
        )
        await send_ok(client, body, 206)
        selected = await viewer.next_event()

    assert selected["id"] == body["id"]
    assert selected["event"]["context"] == [report("r1"), *expected]
    assert (await client.current_context(topic))["context.versionId"] == version


@pytest.mark.parametrize(
    "selection",
    [
        pytest.param(
            [{"key": "select", "reference": {"reference": "Observation/o1"}}],
            id="stu3",
        ),
        pytest.param(
            [{"key": "select", "resource": [{"reference": "Observation/o1"}]}],
            id="ira",
        ),
    ],
)
async def test_select_of_known_resources_answers_202_and_is_sent_as_is(
    hub: RunningHub, selection: list[dict[str, Any]]
) -> None:
    topic = new_topic()
    client, viewer = await watch(hub, topic)

    async with viewer:
        await open_report(client, viewer, topic)
        body = notification(
            topic, "DiagnosticReport-select", [report("r1"), *selection]
        )
        await send_ok(client, body, 202)
        selected = await viewer.next_event()

    assert selected == body


async def test_concurrent_updates_of_one_version_one_wins_the_other_gets_400(
    hub: RunningHub,
) -> None:
    topic = new_topic()
    client, viewer = await watch(hub, topic)

    async with viewer:
        version = await open_report(client, viewer, topic)
        first = report_update(topic, "r1", version, [put(observation("a"))])
        second = report_update(topic, "r1", version, [put(observation("b"))])

        responses = await asyncio.gather(
            post_event(hub.hub_url, first), post_event(hub.hub_url, second)
        )
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [202, 400]
        winner = first if responses[0].status_code == 202 else second

        updated = await viewer.next_event()
        assert updated["id"] == winner["id"]
        assert updated["event"]["context.priorVersionId"] == version
        context = await client.current_context(topic)
        assert context["context.versionId"] == updated["event"]["context.versionId"]
        won = winner["event"]["context"][1]["resource"]["entry"][0]["resource"]["id"]
        assert set(content_resources(context)) == {
            "Observation/o1",
            f"Observation/{won}",
        }

        # Nothing else was delivered: the next event is this one.
        later = report_select(topic, "r1", "Observation/o1")
        await send_ok(client, later)
        assert (await viewer.next_event())["id"] == later["id"]


# Error acknowledgements.


@pytest.mark.parametrize("kind", ["update", "select"])
async def test_an_error_ack_never_changes_the_context(
    hub: RunningHub, kind: str
) -> None:
    topic = new_topic()
    client, viewer = await watch(hub, topic)
    _, watcher = await sync_errors(client, topic)
    endpoint = await client.subscribe(topic, REPORT_EVENTS, subscriber_name="refuser")

    async with viewer, watcher, client.connect(endpoint, auto_ack=False) as refuser:
        await client.publish(topic, "DiagnosticReport-open", report_context("r1"))
        version = (await viewer.next_event())["event"]["context.versionId"]
        opened = await refuser.next_event()
        await refuser.ack(opened["id"])

        if kind == "update":
            body = report_update(topic, "r1", version, [put(observation("o1"))])
        else:
            body = report_select(topic, "r1", "Patient/p1")
        await send_ok(client, body)
        delivered = await viewer.next_event()
        before = await client.current_context(topic)

        refused = await refuser.next_event()
        assert refused["id"] == body["id"]
        await refuser.ack(body["id"], 500)
        sync_error = await watcher.next_event()
        assert sync_error["event"]["hub.event"] == "SyncError"

        assert await client.current_context(topic) == before
        now = delivered["event"].get("context.versionId", version)
        assert before["context.versionId"] == now
        follow_up = report_update(topic, "r1", now, [put(observation("o2"))])
        await send_ok(client, follow_up)
        assert (await viewer.next_event())["id"] == follow_up["id"]
