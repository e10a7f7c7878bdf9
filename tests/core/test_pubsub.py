"""core.pubsub's channels against the real Pub/Sub emulator: a streaming pull left idle keeps receiving."""

from __future__ import annotations

import queue
import time
import uuid

import pytest

from core import pubsub
from devstack.emulators import Service
from tests.emulator_fixtures import PROJECT

IDLE_S = 130.0
"""Past the emulator's keepalive window: a client pinging too often got GOAWAY too_many_pings after about 60 s."""


def keepalive_ms(options: list[tuple[str, object]]) -> object:
    return dict(options).get("grpc.keepalive_time_ms")


def test_channel_options_fit_the_server() -> None:
    assert keepalive_ms(pubsub.channel_options("127.0.0.1:8085")) is None  # the emulator: one ping per 5 min at most
    assert keepalive_ms(pubsub.channel_options(None)) == 30000  # Pub/Sub: the client library's own default


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.timeout(IDLE_S + 120)
def test_an_idle_streaming_pull_still_receives_after_the_keepalive_window(pubsub_emulator: Service) -> None:
    topic_id = f"idle-{uuid.uuid4().hex[:8]}"
    with pubsub.publisher_client(pubsub_emulator.host) as publisher:
        topic = publisher.create_topic(name=publisher.topic_path(PROJECT, topic_id)).name
        subscriber = pubsub.subscriber_client(pubsub_emulator.host)
        path = subscriber.subscription_path(PROJECT, topic_id)
        subscriber.create_subscription(name=path, topic=topic)
        arrived: queue.Queue[tuple[bytes, float]] = queue.Queue()

        def on_message(message: object) -> None:
            arrived.put((message.data, time.monotonic()))  # type: ignore[attr-defined]
            message.ack()  # type: ignore[attr-defined]

        stream = subscriber.subscribe(path, on_message)
        try:
            publisher.publish(topic, b"first").result()
            assert arrived.get(timeout=10)[0] == b"first"
            time.sleep(IDLE_S)  # the idle stream is the point of this test
            sent = time.monotonic()
            publisher.publish(topic, b"after-idle").result()
            data, at = arrived.get(timeout=10)
        finally:
            stream.cancel()
            stream.result(timeout=10)
            subscriber.delete_subscription(subscription=path)
            subscriber.close()
    assert data == b"after-idle"
    assert at - sent < 5
