"""STU2 clients are authorized like STU3 ones: webhook subscribe and context."""

from __future__ import annotations

import httpx2
import pytest

from auth_support import RunningAuthServer, auth_settings, new_topic
from conftest import RunningHub, StartHub
from stu2_support import CallbackServer, stu2_url


@pytest.fixture
async def hub(start_hub: StartHub, auth_server: RunningAuthServer) -> RunningHub:
    running = await start_hub(
        **auth_settings("jwt", auth_server.issuer),
        webhook_allow_http=True,
        webhook_allow_private=True,
    )
    auth_server.dev.hub_url = running.hub_url
    return running


def webhook_form(topic: str, callback: str) -> dict[str, str]:
    return {
        "hub.channel.type": "webhook",
        "hub.mode": "subscribe",
        "hub.topic": topic,
        "hub.events": "patient-open,patient-close",
        "hub.callback": callback,
        "hub.secret": "a secret of the subscriber",
    }


async def test_stu2_webhook_subscribe_without_a_token_is_refused_unverified(
    hub: RunningHub,
) -> None:
    topic = new_topic()
    async with CallbackServer() as callback, httpx2.AsyncClient() as http:
        response = await http.post(
            stu2_url(hub), data=webhook_form(topic, callback.url())
        )
        await hub.hub.webhooks.drain()

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert callback.received == []


async def test_stu2_webhook_subscription_gets_only_the_readable_events(
    hub: RunningHub, auth_server: RunningAuthServer
) -> None:
    topic = new_topic()
    token = await auth_server.token("fhircast/Patient-open.read", topic)
    async with CallbackServer() as callback, httpx2.AsyncClient() as http:
        response = await http.post(
            stu2_url(hub),
            data=webhook_form(topic, callback.url()),
            headers={"Authorization": f"Bearer {token}"},
        )
        await hub.hub.webhooks.drain()

    assert response.status_code == 202
    assert [get.params["hub.events"] for get in callback.gets("subscribe")] == [
        "patient-open"
    ]


async def test_stu2_context_needs_a_token_for_the_topic(
    hub: RunningHub, auth_server: RunningAuthServer
) -> None:
    topic = new_topic()
    other_topic_token = await auth_server.token("fhircast/*.read", new_topic())
    async with httpx2.AsyncClient() as http:
        without = await http.get(f"{stu2_url(hub)}/{topic}")
        elsewhere = await http.get(
            f"{stu2_url(hub)}/{topic}",
            headers={"Authorization": f"Bearer {other_topic_token}"},
        )

    assert without.status_code == 401
    assert elsewhere.status_code == 403
