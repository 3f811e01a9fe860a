"""FHIRcast scopes and the permission rules, without a server."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from fhircast_hub.auth.principal import Principal
from fhircast_hub.auth.scopes import (
    FhircastScope,
    authorize_context_read,
    authorize_publish,
    authorize_subscribe,
    authorize_topic,
    may_read,
    may_write,
    parse_scopes,
)
from fhircast_hub.errors import Forbidden
from fhircast_hub.events.catalog import EventName, resolve_event_name


def principal(scope: str, topic: str | None = None) -> Principal:
    return Principal(
        issuer="https://as.example.org",
        subject="app",
        client_id="app",
        scopes=parse_scopes(scope),
        topic=topic,
        expires_at=None,
        fingerprint="0123456789abcdef",
    )


def events(*names: str) -> Sequence[EventName]:
    return [resolve_event_name(name) for name in names]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "fhircast/Patient-open.read",
            (FhircastScope("patient-open", True, False),),
            id="read",
        ),
        pytest.param(
            "fhircast/Patient-open.write",
            (FhircastScope("patient-open", False, True),),
            id="write",
        ),
        pytest.param(
            "fhircast/Patient-open.*",
            (FhircastScope("patient-open", True, True),),
            id="both",
        ),
        pytest.param("fhircast/*.read", (FhircastScope("*", True, False),), id="any"),
        pytest.param(
            "FHIRCAST/PATIENT-OPEN.READ",
            (FhircastScope("patient-open", True, False),),
            id="case",
        ),
        pytest.param(
            "fhircast/com.example.ping.write",
            (FhircastScope("com.example.ping", False, True),),
            id="custom-event-with-dots",
        ),
        pytest.param(
            "openid patient/*.rs fhircast/Patient-open.read launch",
            (FhircastScope("patient-open", True, False),),
            id="other-scopes-ignored",
        ),
        pytest.param("fhircast/Patient-open.delete", (), id="unknown-right"),
        pytest.param("fhircast/Patient-open", (), id="no-right"),
        pytest.param("fhircast/.read", (), id="no-event"),
        pytest.param("user/Patient.read", (), id="not-fhircast"),
        pytest.param("", (), id="empty"),
    ],
)
def test_parse_scopes_reads_fhircast_scopes(
    text: str, expected: tuple[FhircastScope, ...]
) -> None:
    assert parse_scopes(text) == expected


def test_parse_scopes_takes_a_scp_list_and_skips_what_is_not_a_string() -> None:
    assert parse_scopes(["fhircast/*.write", 7]) == (FhircastScope("*", False, True),)
    assert parse_scopes(None) == ()
    assert parse_scopes(42) == ()


@pytest.mark.parametrize(
    ("scope", "event", "read", "write"),
    [
        pytest.param("fhircast/Patient-open.read", "patient-open", True, False, id="r"),
        pytest.param(
            "fhircast/Patient-open.write", "patient-open", False, True, id="w"
        ),
        pytest.param("fhircast/Patient-open.*", "patient-open", True, True, id="rw"),
        pytest.param("fhircast/*.read", "imagingstudy-open", True, False, id="any-r"),
        pytest.param("fhircast/*.*", "com.example.ping", True, True, id="any-rw"),
        pytest.param(
            "fhircast/Patient-open.read", "patient-close", False, False, id="other"
        ),
        pytest.param(
            "fhircast/Patient-open.read", "ient-open", False, False, id="no-substring"
        ),
        pytest.param("", "patient-open", False, False, id="none"),
    ],
)
def test_may_read_and_may_write(
    scope: str, event: str, read: bool, write: bool
) -> None:
    scopes = parse_scopes(scope)
    assert may_read(scopes, event) is read
    assert may_write(scopes, event) is write


def test_authorize_subscribe_grants_the_readable_requested_events() -> None:
    reader = principal("fhircast/Patient-open.read fhircast/imagingstudy-OPEN.*")
    requested = events("Patient-open", "Patient-close", "ImagingStudy-open")

    granted = authorize_subscribe(reader, "t", requested)

    assert [name.canonical for name in granted] == ["Patient-open", "ImagingStudy-open"]


def test_authorize_subscribe_refuses_when_nothing_is_readable() -> None:
    writer = principal("fhircast/Patient-open.write")

    with pytest.raises(Forbidden) as refused:
        authorize_subscribe(writer, "t", events("Patient-open", "Patient-close"))

    assert refused.value.scope == (
        "fhircast/Patient-open.read fhircast/Patient-close.read"
    )
    assert refused.value.headers()["WWW-Authenticate"].startswith(
        'Bearer error="insufficient_scope"'
    )


def test_authorize_publish_needs_write_for_that_event() -> None:
    (open_event,) = events("patient-OPEN")
    authorize_publish(principal("fhircast/Patient-open.write"), "t", open_event)
    authorize_publish(principal("fhircast/*.write"), "t", open_event)

    with pytest.raises(Forbidden) as refused:
        authorize_publish(principal("fhircast/Patient-open.read"), "t", open_event)
    assert refused.value.scope == "fhircast/Patient-open.write"

    with pytest.raises(Forbidden):
        authorize_publish(principal("fhircast/Patient-close.write"), "t", open_event)


def test_a_token_bound_to_a_topic_is_good_for_that_topic_only() -> None:
    bound = principal("fhircast/*.*", topic="abc")
    (open_event,) = events("Patient-open")

    authorize_topic(bound, "abc")
    authorize_topic(principal("fhircast/*.*"), "anything")
    for check in (
        lambda: authorize_topic(bound, "ABC"),
        lambda: authorize_subscribe(bound, "other", [open_event]),
        lambda: authorize_publish(bound, "other", open_event),
        lambda: authorize_context_read(bound, "other"),
    ):
        with pytest.raises(Forbidden):
            check()


def test_authorize_context_read_needs_some_read_scope() -> None:
    authorize_context_read(principal("fhircast/DiagnosticReport-open.read"), "t")

    with pytest.raises(Forbidden):
        authorize_context_read(principal("fhircast/*.write"), "t")
