"""Keys, caches, outages and token lifetimes: what the hub does over time."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from auth_support import RunningAuthServer, auth_settings, new_topic, patient
from conftest import RunningHub, StartHub, free_port
from fhircast_hub.client import HubRequestError


ALL = "fhircast/*.*"


async def status_of_subscribe(hub: RunningHub, token: str, topic: str) -> int:
    try:
        await hub.client(token).subscribe(topic, ["Patient-open"])
    except HubRequestError as error:
        return error.status_code
    return 202


async def test_cached_keys_keep_working_while_the_jwks_endpoint_is_down(
    start_hub: StartHub, auth_server: RunningAuthServer
) -> None:
    hub = await start_hub(
        **auth_settings("jwt", auth_server.issuer), auth_jwks_refresh_interval=0
    )
    topic = new_topic()
    token = await auth_server.token(ALL, topic)
    stranger = auth_server.unknown_key(topic, ALL)
    assert await status_of_subscribe(hub, token, topic) == 202

    await auth_server.stop()

    assert await status_of_subscribe(hub, token, topic) == 202
    assert await status_of_subscribe(hub, stranger, topic) == 401


async def test_a_new_signing_key_is_fetched_when_a_token_names_it(
    start_hub: StartHub, auth_server: RunningAuthServer
) -> None:
    hub = await start_hub(
        **auth_settings("jwt", auth_server.issuer), auth_jwks_refresh_interval=0
    )
    topic = new_topic()
    assert await status_of_subscribe(hub, auth_server.signed(topic, ALL), topic) == 202

    auth_server.dev.rotate()

    assert await status_of_subscribe(hub, auth_server.signed(topic, ALL), topic) == 202
    assert auth_server.dev.requests["jwks"] == 2


async def test_unknown_key_ids_refresh_the_keys_at_most_once_per_interval(
    start_hub: StartHub, auth_server: RunningAuthServer
) -> None:
    hub = await start_hub(
        **auth_settings("jwt", auth_server.issuer), auth_jwks_refresh_interval=3600
    )
    topic = new_topic()
    assert await status_of_subscribe(hub, auth_server.signed(topic, ALL), topic) == 202

    auth_server.dev.rotate()
    for _ in range(3):
        token = auth_server.signed(topic, ALL)
        assert await status_of_subscribe(hub, token, topic) == 401

    assert auth_server.dev.requests["jwks"] == 1


@pytest.mark.parametrize("mode", ["jwt", "introspection"])
async def test_an_unreachable_authorization_server_fails_closed(
    start_hub: StartHub, auth_server: RunningAuthServer, mode: str
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    hub = await start_hub(**auth_settings(mode, nowhere))
    topic = new_topic()
    token = auth_server.signed(topic, ALL, iss=nowhere)

    assert await status_of_subscribe(hub, token, topic) == 503
    with pytest.raises(HubRequestError) as refused:
        await hub.client(token).current_context(topic)
    assert refused.value.status_code == 503


async def test_introspection_answers_are_cached_until_the_token_expires(
    start_hub: StartHub, auth_server: RunningAuthServer
) -> None:
    hub = await start_hub(**auth_settings("introspection", auth_server.issuer))
    topic = new_topic()
    client = hub.client(await auth_server.token(ALL, topic))

    await client.subscribe(topic, ["Patient-open"])
    await client.publish(topic, "Patient-open", patient("p1"))
    await client.current_context(topic)

    assert auth_server.dev.requests["introspect"] == 1


async def test_a_token_introspection_calls_inactive_is_refused(
    start_hub: StartHub, auth_server: RunningAuthServer
) -> None:
    hub = await start_hub(**auth_settings("introspection", auth_server.issuer))
    topic = new_topic()
    token = await auth_server.token(ALL, topic)
    await auth_server.revoke(token)

    assert await status_of_subscribe(hub, token, topic) == 401
    with pytest.raises(HubRequestError) as refused:
        await hub.client(token).publish(topic, "Patient-open", patient("p1"))
    assert refused.value.status_code == 401
    assert auth_server.dev.requests["introspect"] == 2


@pytest.mark.parametrize("mode", ["jwt", "introspection"])
async def test_the_lease_ends_when_the_token_expires(
    start_hub: StartHub, auth_server: RunningAuthServer, mode: str
) -> None:
    hub = await start_hub(**auth_settings(mode, auth_server.issuer))
    topic = new_topic()
    client = hub.client(await auth_server.token(ALL, topic, expires_in=3))

    endpoint = await client.subscribe(topic, ["Patient-open"], lease_seconds=3600)
    async with client.connect(endpoint) as connection:
        assert connection.confirmation["hub.lease_seconds"] <= 3
        denial = await connection.receive(timeout=15)
        await asyncio.wait_for(connection.socket.wait_closed(), 10)

    assert denial["hub.mode"] == "denied"
    assert connection.socket.close_code == 1000


async def test_without_authorization_the_hub_warns_and_checks_nothing(
    start_hub: StartHub, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fhircast_hub.auth"):
        hub = await start_hub()

    assert "authorization is off" in caplog.text
    topic = f"topic-{uuid.uuid4()}"
    assert await hub.client().publish(topic, "Patient-open", patient("p1")) == 202


async def test_tokens_are_never_logged(
    start_hub: StartHub,
    auth_server: RunningAuthServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = await start_hub(**auth_settings("introspection", auth_server.issuer))
    topic = new_topic()
    accepted = await auth_server.token(ALL, topic)
    unchecked = auth_server.signed(topic, ALL)
    with caplog.at_level(logging.DEBUG, logger="fhircast_hub"):
        await hub.client(accepted).subscribe(topic, ["Patient-open"])
        await auth_server.stop()
        assert await status_of_subscribe(hub, unchecked, topic) == 503

    assert "introspection of token" in caplog.text
    for token in (accepted, unchecked):
        for part in token.split("."):
            assert part not in caplog.text
