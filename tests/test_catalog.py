"""Unit tests of the event catalog and event-name resolution (no server)."""

from __future__ import annotations

import pytest

from fhircast_hub.errors import InvalidRequest
from fhircast_hub.events.catalog import CATALOG, Action, resolve_event_name


STU3_EVENTS = [
    "Patient-open",
    "Patient-close",
    "Encounter-open",
    "Encounter-close",
    "ImagingStudy-open",
    "ImagingStudy-close",
    "DiagnosticReport-open",
    "DiagnosticReport-close",
    "DiagnosticReport-update",
    "DiagnosticReport-select",
    "SyncError",
    "UserLogout",
    "UserHibernate",
    "Home-open",
]


def test_catalog_holds_the_stu3_events() -> None:
    assert sorted(definition.name for definition in CATALOG.values()) == sorted(
        STU3_EVENTS
    )
    assert all(key == definition.name.lower() for key, definition in CATALOG.items())


@pytest.mark.parametrize(
    ("name", "keys", "action", "anchor"),
    [
        ("Patient-open", ("patient",), Action.OPEN, ("Patient", "patient")),
        ("Patient-close", ("patient",), Action.CLOSE, ("Patient", "patient")),
        (
            "Encounter-open",
            ("encounter", "patient"),
            Action.OPEN,
            ("Encounter", "encounter"),
        ),
        ("ImagingStudy-close", ("study",), Action.CLOSE, ("ImagingStudy", "study")),
        (
            "DiagnosticReport-open",
            ("report", "patient"),
            Action.OPEN,
            ("DiagnosticReport", "report"),
        ),
        (
            "DiagnosticReport-update",
            ("report", "updates"),
            Action.UPDATE,
            ("DiagnosticReport", "report"),
        ),
        (
            "DiagnosticReport-select",
            ("report", "select"),
            Action.SELECT,
            ("DiagnosticReport", "report"),
        ),
        ("SyncError", ("operationoutcome",), Action.NONE, (None, None)),
        ("UserLogout", ("parameters",), Action.NONE, (None, None)),
        ("UserHibernate", ("parameters",), Action.NONE, (None, None)),
        ("Home-open", (), Action.NONE, (None, None)),
    ],
)
def test_catalog_definitions_require_their_context(
    name: str,
    keys: tuple[str, ...],
    action: Action,
    anchor: tuple[str | None, str | None],
) -> None:
    definition = CATALOG[name.lower()]

    assert definition.name == name
    assert definition.required_keys == keys
    assert definition.action is action
    assert (definition.anchor_type, definition.anchor_key) == anchor


def test_catalog_stu2_spellings() -> None:
    assert CATALOG["syncerror"].stu2_name == "syncerror"
    assert CATALOG["userlogout"].stu2_name == "userLogout"
    assert CATALOG["userhibernate"].stu2_name == "userHibernate"


@pytest.mark.parametrize(
    ("sent", "canonical"),
    [
        ("Patient-open", "Patient-open"),
        ("patient-open", "Patient-open"),
        ("PATIENT-OPEN", "Patient-open"),
        ("  Patient-Open ", "Patient-open"),
        ("syncerror", "SyncError"),
        ("userLogout", "UserLogout"),
        ("home-open", "Home-open"),
        ("diagnosticreport-UPDATE", "DiagnosticReport-update"),
    ],
)
def test_resolve_event_name_is_case_insensitive_and_canonical(
    sent: str, canonical: str
) -> None:
    name = resolve_event_name(sent)

    assert name.canonical == canonical
    assert name.definition is CATALOG[canonical.lower()]
    assert name.key == canonical.lower()


@pytest.mark.parametrize(
    "sent", ["com.example.ping", "Org.Example.Heart-Beat", "a.b", "x1.y_2.z"]
)
def test_resolve_event_name_passes_custom_events_through(sent: str) -> None:
    name = resolve_event_name(sent)

    assert name.canonical == sent
    assert name.definition is None
    assert name.key == sent.lower()


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param("ient-op", id="part-of-a-name"),
        pytest.param("Patient-opened", id="longer-than-a-name"),
        pytest.param("Patient", id="no-action"),
        pytest.param("Observation-open", id="not-in-the-catalog"),
        pytest.param("heartbeat", id="removed-event"),
        pytest.param("com.", id="empty-label"),
        pytest.param(".example", id="leading-dot"),
        pytest.param("com..example", id="double-dot"),
        pytest.param("com.-example", id="label-starts-with-dash"),
        pytest.param("com.example ping", id="space"),
    ],
)
def test_resolve_event_name_refuses_unknown_names(sent: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        resolve_event_name(sent)

    assert repr(sent.strip()) in refused.value.diagnostics
    assert "Patient-open" in refused.value.diagnostics


@pytest.mark.parametrize("sent", ["*-open", "Patient-*", "*"])
def test_resolve_event_name_refuses_wildcards(sent: str) -> None:
    with pytest.raises(InvalidRequest, match="wildcard"):
        resolve_event_name(sent)


@pytest.mark.parametrize("sent", [None, "", "   ", 5, ["Patient-open"]])
def test_resolve_event_name_refuses_what_is_not_a_name(sent: object) -> None:
    with pytest.raises(InvalidRequest, match="expected an event name"):
        resolve_event_name(sent)
