"""Who may subscribe, publish, read context and unsubscribe, with which token.

Every test runs twice: with the hub verifying JWTs itself (``jwt``) and with
the hub asking the authorization server (``introspection``). Both talk to the
development authorization server of ``examples/`` over real HTTP.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest

from auth_support import RunningAuthServer, auth_settings, new_topic, patient
from conftest import RunningHub, StartHub
from fhircast_hub.client import Connection, HubClient, HubRequestError


ALL = "fhircast/*.*"

Raw = Callable[[str | None], "RawCalls"]
Forge = Callable[[RunningAuthServer, str], str | None]


@pytest.fixture(params=["jwt", "introspection"])
def mode(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
async def hub(
    start_hub: StartHub, auth_server: RunningAuthServer, mode: str
) -> RunningHub:
    running = await start_hub(**auth_settings(mode, auth_server.issuer))
    auth_server.dev.hub_url = running.hub_url
    return running


@pytest.fixture
async def raw(hub: RunningHub) -> AsyncIterator[Raw]:
    """Plain-HTTP callers with a given token; all closed after the test."""
    made: list[RawCalls] = []

    def make(token: str | None) -> RawCalls:
        made.append(RawCalls(hub, token))
        return made[-1]

    yield make
    for calls in made:
        await calls.http.aclose()


def event_body(topic: str, name: str, patient_id: str) -> dict[str, Any]:
    return {
        "timestamp": "2024-05-01T10:00:00Z",
        "id": str(uuid.uuid4()),
        "event": {
            "hub.topic": topic,
            "hub.event": name,
            "context": patient(patient_id),
        },
    }


class RawCalls:
    """The four actions as plain HTTP, so that status and headers can be read."""

    def __init__(self, hub: RunningHub, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        self.http = httpx2.AsyncClient(headers=headers, timeout=10)
        self.url = hub.hub_url

    async def subscribe(
        self, topic: str, events: str = "Patient-open"
    ) -> httpx2.Response:
        form = {
            "hub.channel.type": "websocket",
            "hub.mode": "subscribe",
            "hub.topic": topic,
            "hub.events": events,
        }
        return await self.http.post(self.url, data=form)

    async def unsubscribe(self, topic: str, endpoint: str) -> httpx2.Response:
        form = {
            "hub.channel.type": "websocket",
            "hub.mode": "unsubscribe",
            "hub.topic": topic,
            "hub.channel.endpoint": endpoint,
        }
        return await self.http.post(self.url, data=form)

    async def publish(self, topic: str, patient_id: str) -> httpx2.Response:
        return await self.http.post(
            self.url, json=event_body(topic, "Patient-open", patient_id)
        )

    async def context(self, topic: str) -> httpx2.Response:
        return await self.http.get(f"{self.url}/{topic}")


def assert_refused(response: httpx2.Response, status: int) -> None:
    assert response.status_code == status, response.text
    challenge = response.headers["www-authenticate"]
    expected = "invalid_token" if status == 401 else "insufficient_scope"
    assert challenge.startswith(f'Bearer error="{expected}"')
    assert response.json()["resourceType"] == "OperationOutcome"


async def next_patient(connection: Connection) -> str:
    event = await connection.next_event()
    patient_id: str = event["event"]["context"][0]["resource"]["id"]
    return patient_id


async def topic_exists(client: HubClient, topic: str) -> bool:
    try:
        await client.current_context(topic)
    except HubRequestError as error:
        assert error.status_code == 404
        return False
    return True


async def test_good_tokens_allow_every_action(
    hub: RunningHub, auth_server: RunningAuthServer
) -> None:
    topic = new_topic()
    reader = hub.client(await auth_server.token("fhircast/Patient-open.read", topic))
    writer = hub.client(await auth_server.token("fhircast/Patient-open.write", topic))

    endpoint = await reader.subscribe(topic, ["Patient-open"])
    async with reader.connect(endpoint) as connection:
        assert connection.confirmation["hub.events"] == "Patient-open"
        assert await writer.publish(topic, "Patient-open", patient("p1")) == 202
        assert await next_patient(connection) == "p1"

        context = await reader.current_context(topic)
        assert context["context.type"] == "Patient"
        assert context["context"][0]["resource"]["id"] == "p1"

        await reader.unsubscribe(topic, endpoint)
        denial = await connection.receive()
    assert denial["hub.mode"] == "denied"


def _signed(**claims: Any) -> Forge:
    return lambda auth, topic: auth.signed(topic, ALL, **claims)


BAD_TOKENS = [
    pytest.param(lambda auth, topic: None, 401, id="no-token"),
    pytest.param(lambda auth, topic: auth.unsigned(topic, ALL), 401, id="alg-none"),
    pytest.param(
        lambda auth, topic: auth.hmac_with_public_key(topic, ALL),
        401,
        id="hs256-with-public-key",
    ),
    pytest.param(_signed(exp=int(time.time()) - 600), 401, id="expired"),
    pytest.param(_signed(nbf=int(time.time()) + 600), 401, id="nbf-in-future"),
    pytest.param(_signed(iss="http://127.0.0.1:9/evil"), 401, id="wrong-issuer"),
    pytest.param(_signed(aud="http://other.example.org"), 401, id="wrong-audience"),
    pytest.param(
        lambda auth, topic: auth.unknown_key(topic, ALL), 401, id="unknown-kid"
    ),
    pytest.param(
        lambda auth, topic: auth.tampered(topic, ALL), 401, id="changed-payload"
    ),
    pytest.param(
        lambda auth, topic: auth.signed("another-topic", ALL), 403, id="other-topic"
    ),
]


@pytest.mark.parametrize(("forge", "status"), BAD_TOKENS)
async def test_bad_token_is_refused_for_every_action(
    hub: RunningHub, raw: Raw, auth_server: RunningAuthServer, forge: Forge, status: int
) -> None:
    topic, unused_topic = new_topic(), new_topic()
    good = hub.client(auth_server.signed(None, ALL))  # type: ignore[arg-type]
    bad = raw(forge(auth_server, topic))
    endpoint = await good.subscribe(topic, ["Patient-open"])
    assert await good.publish(topic, "Patient-open", patient("before")) == 202

    async with good.connect(endpoint) as connection:
        assert await next_patient(connection) == "before"

        assert_refused(await bad.subscribe(topic), status)
        assert_refused(await bad.subscribe(unused_topic), status)
        assert_refused(await bad.publish(topic, "intruder"), status)
        assert_refused(await bad.context(topic), status)
        assert_refused(await bad.unsubscribe(topic, endpoint), status)

        # Still subscribed, and the refused event was neither applied nor sent.
        assert await good.publish(topic, "Patient-open", patient("after")) == 202
        assert await next_patient(connection) == "after"
    assert not await topic_exists(good, unused_topic)


async def test_subscribe_grants_only_the_readable_events(
    hub: RunningHub, auth_server: RunningAuthServer
) -> None:
    topic = new_topic()
    reader = hub.client(await auth_server.token("FHIRCAST/patient-OPEN.READ", topic))
    writer = hub.client(await auth_server.token("fhircast/*.write", topic))

    endpoint = await reader.subscribe(topic, ["Patient-open", "Patient-close"])
    async with reader.connect(endpoint) as connection:
        assert connection.confirmation["hub.events"] == "Patient-open"
        await writer.publish(topic, "Patient-open", patient("p1"))
        await writer.publish(topic, "Patient-close", patient("p1"))
        await writer.publish(topic, "Patient-open", patient("p2"))
        first, second = await connection.next_event(), await connection.next_event()
    assert [first["event"]["hub.event"], second["event"]["hub.event"]] == [
        "Patient-open",
        "Patient-open",
    ]
    assert second["event"]["context"][0]["resource"]["id"] == "p2"


async def test_subscribe_without_a_readable_event_is_forbidden(
    hub: RunningHub, raw: Raw, auth_server: RunningAuthServer
) -> None:
    topic = new_topic()
    token = await auth_server.token("fhircast/Patient-open.write", topic)
    calls = raw(token)

    response = await calls.subscribe(topic, "Patient-open,Patient-close")

    assert_refused(response, 403)
    assert "fhircast/Patient-open.read" in response.headers["www-authenticate"]
    assert not await topic_exists(hub.client(auth_server.signed(topic, ALL)), topic)


async def test_publish_with_only_read_scope_is_forbidden(
    hub: RunningHub, raw: Raw, auth_server: RunningAuthServer
) -> None:
    topic = new_topic()
    reader_token = await auth_server.token("fhircast/Patient-open.read", topic)
    reader = hub.client(reader_token)
    writer = hub.client(await auth_server.token("fhircast/Patient-open.write", topic))
    endpoint = await reader.subscribe(topic, ["Patient-open"])

    async with reader.connect(endpoint) as connection:
        calls = raw(reader_token)
        response = await calls.publish(topic, "intruder")
        assert_refused(response, 403)
        assert (
            'scope="fhircast/Patient-open.write"'
            in response.headers["www-authenticate"]
        )
        await writer.publish(topic, "Patient-open", patient("after"))
        assert await next_patient(connection) == "after"


async def test_reading_context_needs_a_read_scope(
    hub: RunningHub, raw: Raw, auth_server: RunningAuthServer
) -> None:
    topic = new_topic()
    writer_token = await auth_server.token("fhircast/Patient-open.write", topic)
    await hub.client(writer_token).publish(topic, "Patient-open", patient("p1"))
    calls = raw(writer_token)

    assert_refused(await calls.context(topic), 403)


async def test_opaque_tokens_are_accepted_only_by_introspection(
    hub: RunningHub, raw: Raw, auth_server: RunningAuthServer, mode: str
) -> None:
    topic = new_topic()
    token = await auth_server.token(ALL, topic, token_format="opaque")
    calls = raw(token)

    response = await calls.subscribe(topic)

    assert response.status_code == (202 if mode == "introspection" else 401)
