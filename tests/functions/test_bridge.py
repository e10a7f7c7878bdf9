"""devstack.bridge: which notifications become CloudEvents, and acks only after a 2xx answer (real Pub/Sub emulator)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cloudevents.http import from_http
from google.cloud import storage

from core.notifications import Malformed
from devstack import emulators
from devstack.bridge import EVENT_TYPE, Bridge, BridgeSettings, main, to_cloud_event
from devstack.emulators import Service
from tests.emulator_fixtures import PROJECT

BUCKET = "iris-bucket"
RESOURCE = {"bucket": BUCKET, "name": "incoming/a.csv", "generation": "1700000000000001", "size": "12"}


def _attributes(**overrides: str) -> dict[str, str]:
    base = {"eventType": "OBJECT_FINALIZE", "bucketId": BUCKET, "objectId": "incoming/a.csv"}
    return {**base, "objectGeneration": "1700000000000001", "eventTime": "2026-11-27T10:00:00Z", **overrides}


def test_an_incoming_finalize_becomes_a_storage_cloudevent() -> None:
    event = to_cloud_event(_attributes(), json.dumps(RESOURCE).encode(), BUCKET)

    assert event is not None
    assert event["type"] == EVENT_TYPE == "google.cloud.storage.object.v1.finalized"
    assert event["source"] == f"//storage.googleapis.com/projects/_/buckets/{BUCKET}"
    assert event["subject"] == "objects/incoming/a.csv"
    assert event["id"] == f"{BUCKET}/incoming/a.csv/1700000000000001"
    assert event["time"] == "2026-11-27T10:00:00Z"
    assert event.data == RESOURCE


@pytest.mark.parametrize(
    "attributes",
    [
        _attributes(eventType="OBJECT_DELETE"),
        _attributes(bucketId="another-bucket"),
        _attributes(objectId="data/a.csv"),
        _attributes(objectId="quarantine/incoming/a.csv"),
    ],
    ids=["delete", "other-bucket", "data", "quarantine"],
)
def test_other_notifications_are_not_delivered(attributes: dict[str, str]) -> None:
    assert to_cloud_event(attributes, json.dumps(RESOURCE).encode(), BUCKET) is None


@pytest.mark.parametrize(
    "attributes",
    [_attributes(objectGeneration="x"), _attributes(objectGeneration=""), _attributes(bucketId="")],
    ids=["bad-generation", "no-generation", "no-bucket"],
)
def test_malformed_notifications_are_refused(attributes: dict[str, str]) -> None:
    with pytest.raises(Malformed):
        to_cloud_event(attributes, json.dumps(RESOURCE).encode(), BUCKET)


class _Function(BaseHTTPRequestHandler):
    """Answers 500 to the first POST, then 204; records every CloudEvent it receives."""

    received: list = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(from_http(dict(self.headers), body))
        self.send_response(500 if len(self.received) == 1 else 204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def function_stub() -> Iterator[str]:
    _Function.received = []
    server = ThreadingHTTPServer((emulators.LOOPBACK, 0), _Function)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{emulators.LOOPBACK}:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.integration
def test_a_failed_delivery_is_retried_and_acked_only_after_a_2xx(pubsub_emulator: Service, function_stub: str) -> None:
    topic = f"bridge-{uuid.uuid4().hex[:8]}"
    env: dict[str, Any] = {"pubsub_emulator_host": pubsub_emulator.host, "google_cloud_project": PROJECT}
    settings = BridgeSettings(**env, incoming_events_topic=topic, gcs_bucket=BUCKET)
    bridge = Bridge(settings, function_stub, retry_delay=1)
    bridge.open()
    try:
        with emulators.publisher_client(pubsub_emulator.host) as publisher:
            path = publisher.topic_path(PROJECT, topic)
            publisher.publish(path, b"{}", **_attributes(objectId="data/a.csv")).result()
            publisher.publish(path, json.dumps(RESOURCE).encode(), **_attributes()).result()
        deadline = time.monotonic() + 10
        while len(_Function.received) < 2 and time.monotonic() < deadline:
            bridge.pump()
        end = time.monotonic() + 2.5  # well past the 1 s redelivery delay: an acked message stays away
        while time.monotonic() < end:
            bridge.pump(timeout=0.5)
    finally:
        bridge.close()

    assert [e["subject"] for e in _Function.received] == ["objects/incoming/a.csv"] * 2
    assert _Function.received[1].data == RESOURCE


@pytest.mark.integration
def test_a_lost_subscription_is_created_again(
    pubsub_emulator: Service, gcs_emulator: Service, function_stub: str
) -> None:
    topic = f"bridge-{uuid.uuid4().hex[:8]}"
    env: dict[str, Any] = {"pubsub_emulator_host": pubsub_emulator.host, "google_cloud_project": PROJECT}
    env["storage_emulator_host"] = gcs_emulator.host  # the subscription created again is followed by a sweep
    bridge = Bridge(BridgeSettings(**env, incoming_events_topic=topic, gcs_bucket=BUCKET), function_stub)
    path = bridge.open()
    try:
        with emulators.subscriber_client(pubsub_emulator.host) as subscriber:
            subscriber.delete_subscription(subscription=path)
        assert bridge.pump(timeout=0.5) == 0
        with emulators.publisher_client(pubsub_emulator.host) as publisher:
            publisher.publish(publisher.topic_path(PROJECT, topic), b"{}", **_attributes(bucketId="x")).result()
        deadline = time.monotonic() + 10
        while not bridge.pump(timeout=0.5) and time.monotonic() < deadline:
            pass
        assert time.monotonic() < deadline
    finally:
        bridge.close()


def test_the_bridge_refuses_to_start_without_the_pubsub_emulator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)

    assert main(["--function-url", "http://127.0.0.1:1/"]) == 2
    assert "PUBSUB_EMULATOR_HOST must be set" in capsys.readouterr().err


@pytest.mark.integration
def test_a_non_ascii_object_name_reaches_the_function_unchanged(pubsub_emulator: Service, function_stub: str) -> None:
    topic = f"bridge-{uuid.uuid4().hex[:8]}"
    name = "incoming/irysy-Łódź 🌸.csv"
    env: dict[str, Any] = {"pubsub_emulator_host": pubsub_emulator.host, "google_cloud_project": PROJECT}
    bridge = Bridge(BridgeSettings(**env, incoming_events_topic=topic, gcs_bucket=BUCKET), function_stub, retry_delay=1)
    bridge.open()
    try:
        with emulators.publisher_client(pubsub_emulator.host) as publisher:
            resource = json.dumps(RESOURCE | {"name": name}).encode()
            publisher.publish(publisher.topic_path(PROJECT, topic), resource, **_attributes(objectId=name)).result()
        deadline = time.monotonic() + 10
        while len(_Function.received) < 2 and time.monotonic() < deadline:
            bridge.pump(timeout=0.5)  # the stub answers 500 first: the same event is delivered again
    finally:
        bridge.close()

    assert [e["subject"] for e in _Function.received] == [f"objects/{name}"] * 2
    assert _Function.received[1].data["name"] == name


@pytest.mark.integration
def test_a_named_subscription_keeps_what_arrived_while_the_bridge_was_down(
    pubsub_emulator: Service, function_stub: str
) -> None:
    topic, name = f"bridge-{uuid.uuid4().hex[:8]}", f"durable-{uuid.uuid4().hex[:8]}"
    env: dict[str, Any] = {"pubsub_emulator_host": pubsub_emulator.host, "google_cloud_project": PROJECT}
    settings = BridgeSettings(**env, incoming_events_topic=topic, gcs_bucket=BUCKET)
    first = Bridge(settings, function_stub, subscription=name)
    first.open()
    first.close()  # a bridge that stopped (or died): its subscription stays
    with emulators.publisher_client(pubsub_emulator.host) as publisher:
        publisher.publish(publisher.topic_path(PROJECT, topic), json.dumps(RESOURCE).encode(), **_attributes()).result()
    second = Bridge(settings, function_stub, retry_delay=1, subscription=name)
    try:
        second.open()
        deadline = time.monotonic() + 10
        while len(_Function.received) < 2 and time.monotonic() < deadline:
            second.pump(timeout=0.5)
    finally:
        with emulators.subscriber_client(pubsub_emulator.host) as subscriber:
            subscriber.delete_subscription(subscription=second.subscription)
        second.close()

    assert [e.data for e in _Function.received] == [RESOURCE, RESOURCE]


@pytest.mark.integration
def test_uploads_whose_notification_was_lost_are_swept_from_incoming(
    pubsub_emulator: Service, gcs_emulator: Service, storage_client: storage.Client, bucket_name: str,
    function_stub: str,
) -> None:  # fmt: skip
    env: dict[str, Any] = {"pubsub_emulator_host": pubsub_emulator.host, "google_cloud_project": PROJECT}
    topic = f"bridge-{uuid.uuid4().hex[:8]}"  # nothing publishes here: every notification is lost
    settings = BridgeSettings(
        **env, storage_emulator_host=gcs_emulator.host, incoming_events_topic=topic, gcs_bucket=bucket_name
    )
    bucket = storage_client.bucket(bucket_name)
    bucket.blob("incoming/lost Łódź.csv").upload_from_string("a,b\n")
    bucket.blob("data/already-ingested.csv").upload_from_string("a,b\n")
    bridge = Bridge(settings, function_stub)
    try:
        bridge.open()
        assert bridge.sweep(min_age=3600) == 0  # a periodic sweep leaves young files to their notification
        assert _Function.received == []
        assert bridge.sweep() == 0  # the stub answers 500 first: not delivered ...
        assert bridge.sweep() == 1  # ... so the next sweep delivers it again
    finally:
        bridge.close()

    assert [e["subject"] for e in _Function.received] == ["objects/incoming/lost Łódź.csv"] * 2
    delivered = _Function.received[1]
    assert delivered["id"] == f"{bucket_name}/incoming/lost Łódź.csv/{delivered.data['generation']}"
    assert delivered.data["bucket"] == bucket_name
    assert int(delivered.data["generation"]) > 0
