"""Unit tests of subscribe parsing, event sets and leases (no server)."""

from __future__ import annotations

from typing import Any

import pytest

from fhircast_hub.errors import InvalidRequest
from fhircast_hub.subscriptions import (
    IRA_REQUIRED_EVENTS,
    Subscription,
    lease_expiry,
    lease_for,
    new_endpoint_id,
    parse_subscription_request,
)


def params(**values: Any) -> list[tuple[str, Any]]:
    base: dict[str, Any] = {
        "hub.channel.type": "websocket",
        "hub.mode": "subscribe",
        "hub.topic": "T",
        "hub.events": "Patient-open",
    }
    for name, value in values.items():
        name = name.replace("_", ".").replace("lease.seconds", "lease_seconds")
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return list(base.items())


def test_parse_subscribe_request() -> None:
    request = parse_subscription_request(
        params(
            hub_lease_seconds="60",
            subscriber_name=" Viewer ",
            hub_topic=" T ",
        )
    )

    assert request.mode == "subscribe"
    assert request.channel_type == "websocket"
    assert request.topic == "T"
    assert [name.canonical for name in request.events] == ["Patient-open"]
    assert request.lease_seconds == 60
    assert request.endpoint is None
    assert request.subscriber_name == "Viewer"


@pytest.mark.parametrize(
    ("events", "granted"),
    [
        ("Patient-open, ImagingStudy-open", ["Patient-open", "ImagingStudy-open"]),
        ("patient-open,PATIENT-OPEN,Patient-open", ["Patient-open"]),
        (",Patient-open,,", ["Patient-open"]),
        (["Patient-open", " syncerror "], ["Patient-open", "SyncError"]),
        ("com.example.ping,COM.example.PING", ["com.example.ping"]),
    ],
)
def test_parse_events_are_a_trimmed_set(events: Any, granted: list[str]) -> None:
    request = parse_subscription_request(params(hub_events=events))

    assert [name.canonical for name in request.events] == granted


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hub_mode": None}, "hub.mode"),
        ({"hub_mode": "publish"}, "'publish'"),
        ({"hub_channel_type": None}, "hub.channel.type"),
        ({"hub_channel_type": "webhook"}, "'webhook'"),
        ({"hub_topic": None}, "hub.topic, got nothing"),
        ({"hub_topic": ""}, "hub.topic, got ''"),
        ({"hub_topic": 5}, "hub.topic, got 5"),
        ({"hub_events": None}, "hub.events.*nothing"),
        ({"hub_events": 3}, "hub.events.*3"),
        ({"hub_events": ["Patient-open", 3]}, "hub.events"),
        ({"hub_events": " , "}, "at least one event"),
        ({"hub_events": []}, "at least one event"),
        ({"hub_events": "*-open"}, "wildcard"),
        ({"hub_events": "ient-op"}, "unknown event"),
        ({"hub_lease_seconds": "0"}, "positive whole number"),
        ({"hub_lease_seconds": "-3"}, "positive whole number"),
        ({"hub_lease_seconds": "1.5"}, "positive whole number"),
        ({"hub_lease_seconds": True}, "positive whole number"),
        ({"hub_lease_seconds": [1]}, "positive whole number"),
        ({"subscriber_name": 7}, "subscriber.name to be a string"),
        ({"hub_channel_endpoint": 7}, "URL string"),
    ],
)
def test_parse_refuses(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_subscription_request(params(**changes))


def test_parse_refuses_a_parameter_given_twice() -> None:
    with pytest.raises(InvalidRequest, match="'hub.events' at most once"):
        parse_subscription_request([*params(), ("hub.events", "Patient-close")])


@pytest.mark.parametrize("lease", [None, ""])
def test_parse_lease_absent(lease: Any) -> None:
    parameters = params() if lease is None else params(hub_lease_seconds=lease)

    assert parse_subscription_request(parameters).lease_seconds is None


def test_parse_lease_as_a_number() -> None:
    assert parse_subscription_request(params(hub_lease_seconds=30)).lease_seconds == 30


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("ws://hub/ws/abc", "abc"),
        ("wss://hub.example.org/ws/abc/", "abc"),
        ("ws://hub/ws/abc?x=1", "abc"),
        ("abc", "abc"),
        (" ", None),
        ("", None),
    ],
)
def test_parse_endpoint_from_a_url_or_an_id(
    endpoint: str, expected: str | None
) -> None:
    request = parse_subscription_request(params(hub_channel_endpoint=endpoint))

    assert request.endpoint == expected


def test_parse_blank_subscriber_name_is_none() -> None:
    assert parse_subscription_request(params(subscriber_name=" ")).subscriber_name is (
        None
    )


def test_parse_unsubscribe_needs_only_the_endpoint() -> None:
    request = parse_subscription_request(
        params(
            hub_mode="unsubscribe",
            hub_events=None,
            hub_channel_endpoint="ws://h/ws/abc",
            hub_lease_seconds="nonsense, ignored",
        )
    )

    assert request.mode == "unsubscribe"
    assert request.endpoint == "abc"
    assert request.events == ()
    assert request.lease_seconds is None


def test_parse_unsubscribe_without_an_endpoint_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="hub.channel.endpoint"):
        parse_subscription_request(params(hub_mode="unsubscribe"))


def test_parse_ira_needs_a_name_and_the_report_events() -> None:
    events = ",".join(IRA_REQUIRED_EVENTS)
    request = parse_subscription_request(
        params(hub_events=events.lower(), subscriber_name="Reporter"), ira=True
    )
    assert len(request.events) == len(IRA_REQUIRED_EVENTS)

    with pytest.raises(InvalidRequest, match="subscriber.name"):
        parse_subscription_request(params(hub_events=events), ira=True)
    with pytest.raises(InvalidRequest, match=r"missing \['SyncError'\]"):
        parse_subscription_request(
            params(hub_events=",".join(IRA_REQUIRED_EVENTS[:-1]), subscriber_name="R"),
            ira=True,
        )
    # An IRA unsubscribe needs no name.
    unsubscribe = parse_subscription_request(
        params(hub_mode="unsubscribe", hub_channel_endpoint="abc"), ira=True
    )
    assert unsubscribe.mode == "unsubscribe"


@pytest.mark.parametrize(
    ("requested", "granted"), [(None, 100), (50, 50), (500, 300), (300, 300)]
)
def test_lease_for_defaults_and_caps(requested: int | None, granted: int) -> None:
    assert lease_for(requested, 100, 300) == granted


def test_new_endpoint_ids_are_long_random_and_url_safe() -> None:
    ids = {new_endpoint_id() for _ in range(1000)}

    assert len(ids) == 1000
    assert all(len(endpoint) >= 43 for endpoint in ids)
    assert all(endpoint.replace("-", "").replace("_", "").isalnum() for endpoint in ids)


def test_subscription_wants_granted_events_by_case_folded_name() -> None:
    subscription = Subscription("e" * 43, "T", ("Patient-open", "com.Example.X"), 0)

    assert subscription.wants("patient-open")
    assert subscription.wants("com.example.x")
    assert not subscription.wants("patient-close")
    assert not subscription.wants("Patient-open")
    assert subscription.event_keys == {"patient-open", "com.example.x"}


def test_subscription_lease_seconds_rounds_and_never_goes_negative() -> None:
    subscription = Subscription("e", "T", (), expires_at=100.0)

    assert subscription.lease_seconds(40.4) == 60
    assert subscription.lease_seconds(100.0) == 0
    assert subscription.lease_seconds(150.0) == 0


def test_subscription_renewed_replaces_events_and_lease_and_keeps_identity() -> None:
    subscription = Subscription("endpoint", "T", ("Patient-open",), 10.0, "Viewer")

    renewed = subscription.renewed(["Patient-close"], 99.0, None)
    renamed = subscription.renewed(["Patient-close"], 99.0, "Other")

    assert renewed.endpoint == "endpoint"
    assert renewed.topic == "T"
    assert renewed.events == ("Patient-close",)
    assert renewed.expires_at == 99.0
    assert renewed.subscriber_name == "Viewer"
    assert renamed.subscriber_name == "Other"
    assert subscription.events == ("Patient-open",)


def test_subscription_display_name() -> None:
    assert Subscription("abcdefghijk", "T", (), 0, "Viewer").display_name == "Viewer"
    assert Subscription("abcdefghijk", "T", (), 0).display_name == (
        "subscriber abcdefgh"
    )


def test_lease_expiry_never_outlives_the_cap() -> None:
    assert lease_expiry(None, 100, 300, now=1000.0) == 1100.0
    assert lease_expiry(9999, 100, 300, now=1000.0) == 1300.0
    assert lease_expiry(200, 100, 300, now=1000.0, cap=1050.0) == 1050.0
    assert lease_expiry(20, 100, 300, now=1000.0, cap=1050.0) == 1020.0
