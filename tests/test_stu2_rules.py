"""The STU2 rules without a server: requests, names, shapes, URLs."""

from __future__ import annotations

import copy
import hashlib
import hmac
import ipaddress

import pytest

from conftest import spec_example
from fhircast_hub import stu2
from fhircast_hub.channels.callbacks import CallbackPolicy, is_public_address
from fhircast_hub.channels.intent import with_query
from fhircast_hub.channels.webhook import signature
from fhircast_hub.errors import InvalidRequest
from fhircast_hub.subscriptions import parse_stu2_subscription_request


def webhook(**overrides: str) -> list[tuple[str, str]]:
    parameters = {
        "hub.channel.type": "webhook",
        "hub.mode": "subscribe",
        "hub.topic": "T",
        "hub.events": "patient-open",
        "hub.callback": "https://cb.example/x",
        **overrides,
    }
    return [(name, value) for name, value in parameters.items() if value != "-"]


def test_stu2_request_webhook_subscribe() -> None:
    request = parse_stu2_subscription_request(
        webhook(**{"hub.secret": " spaced ", "hub.lease_seconds": "60"})
    )

    assert request.channel_type == "webhook"
    assert request.callback == "https://cb.example/x"
    assert request.secret == " spaced "
    assert request.lease_seconds == 60
    assert [name.canonical for name in request.events] == ["Patient-open"]
    assert request.fhircast_version == "STU2"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"hub.callback": "-"}, id="no-callback"),
        pytest.param({"hub.channel.type": "email"}, id="unknown-channel"),
        pytest.param({"hub.events": ""}, id="no-events"),
        pytest.param({"hub.secret": "s" * 200}, id="long-secret"),
        pytest.param({"hub.mode": "publish"}, id="unknown-mode"),
    ],
)
def test_stu2_request_refused(overrides: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest):
        parse_stu2_subscription_request(webhook(**overrides))


def test_stu2_unsubscribe_ignores_events_and_lease() -> None:
    request = parse_stu2_subscription_request(
        webhook(**{"hub.mode": "unsubscribe", "hub.events": "*-nonsense"})
    )

    assert request.mode == "unsubscribe"
    assert request.events == ()
    assert request.lease_seconds is None


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("patient-*", {"Patient-open", "Patient-close"}),
        ("*-close", {"Patient-close", "Encounter-close", "ImagingStudy-close",
                     "DiagnosticReport-close"}),
        ("*-update", {"DiagnosticReport-update"}),
    ],
)  # fmt: skip
def test_stu2_wildcard_expansion(pattern: str, expected: set[str]) -> None:
    assert {name.canonical for name in stu2.expand_wildcard(pattern)} == expected


@pytest.mark.parametrize(
    ("name", "spelled"),
    [
        ("Patient-open", "patient-open"),
        ("SyncError", "syncerror"),
        ("UserLogout", "userLogout"),
        ("com.example.Ping", "com.example.Ping"),
    ],
)
def test_stu2_event_name(name: str, spelled: str) -> None:
    assert stu2.event_name(name) == spelled


def test_stu2_render_leaves_the_stu3_notification_untouched() -> None:
    notification = spec_example("stu3-3-2-1-SyncError-1.json")
    notification["event"]["context.versionId"] = "v1"
    original = copy.deepcopy(notification)

    rendered = stu2.render_notification(notification)

    assert notification == original
    assert rendered["event"]["hub.event"] == "syncerror"
    assert "context.versionId" not in rendered["event"]
    codings = rendered["event"]["context"][0]["resource"]["issue"][0]["details"]
    names = [
        coding["code"]
        for coding in codings["coding"]
        if coding["system"].endswith("/eventname")
    ]
    assert names == ["patient-open"]


@pytest.mark.parametrize(
    ("callback", "expected"),
    [
        ("https://h/p", "https://h/p?hub.mode=x"),
        ("https://h/p?a=1", "https://h/p?a=1&hub.mode=x"),
        ("https://h/p?", "https://h/p?hub.mode=x"),
        ("https://h/p?a=%20#frag", "https://h/p?a=%20&hub.mode=x"),
    ],
)
def test_with_query_keeps_the_callback_query(callback: str, expected: str) -> None:
    assert with_query(callback, {"hub.mode": "x"}) == expected


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.2", False),
        ("169.254.169.254", False),
        ("::ffff:10.0.0.1", False),
        ("224.0.0.1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_policy_refuses_http_unless_allowed() -> None:
    CallbackPolicy(allow_http=True, allow_private=False).check_url("http://h/p")
    with pytest.raises(InvalidRequest):
        CallbackPolicy(allow_http=False, allow_private=True).check_url("http://h/p")


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"id":"1"}'
    digest = hmac.new(b"key", body, hashlib.sha256).hexdigest()

    assert signature("key", body) == f"sha256={digest}"
