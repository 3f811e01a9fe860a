from __future__ import annotations

from conftest import RunningHub, spec_example


async def test_subscriber_receives_the_event_it_subscribed_to(hub: RunningHub) -> None:
    client = hub.client()
    example = spec_example("stu3-3-3-1-Patient-open-1.json")
    topic = example["event"]["hub.topic"]
    endpoint = await client.subscribe(topic, ["Patient-open"], subscriber_name="viewer")

    async with client.connect(endpoint) as connection:
        assert connection.confirmation["hub.events"] == "Patient-open"
        assert await client.send(example) == 202
        event = await connection.next_event()

    assert event["id"] == example["id"]
    assert event["event"]["context"] == example["event"]["context"]
