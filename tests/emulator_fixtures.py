"""Pytest plugin: the real emulators (Pub/Sub emulator, fake-gcs-server) on loopback.

Register with ``pytest_plugins = ["tests.emulator_fixtures"]``. Processes are stopped by PID in teardown.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import storage

from core import csvscan
from devstack import emulators
from devstack.emulators import PubsubTarget, Service
from tests import keys
from trainer import evalset

PROJECT = "test-project"
TOPIC = "gcs-events"


def bucket_env(storage_client: storage.Client, gcs: Service, pubsub: Service, prefix: str) -> dict[str, str]:
    """Environment of processes working on a new bucket of the session's emulators (named `prefix`-random)."""
    bucket = f"{prefix}-{uuid.uuid4().hex[:12]}"
    seed_evalset(storage_client.create_bucket(bucket))
    return {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "GCS_BUCKET": bucket,
        "STORAGE_EMULATOR_HOST": gcs.host,
        "PUBSUB_EMULATOR_HOST": pubsub.host,
        "MODEL_EVENTS_TOPIC": TOPIC,
    }


@functools.cache
def _iris() -> tuple[csvscan.Row, ...]:
    return tuple(evalset.iris_rows())


def seed_evalset(bucket: storage.Bucket) -> str:
    """Seed a new bucket as the setup does: the bundled iris as the trusted evaluation set, signed with the test key.
    Returns its version."""
    return evalset.publish(bucket, keys.KEYRING, None, _iris())


@dataclass(frozen=True)
class Notification:
    """One pulled Pub/Sub message (already acked)."""

    attributes: dict[str, str]
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data)


def drain(
    subscription_path: str,
    host: str,
    timeout: float = 5.0,
    expect: int | None = None,
    keep: Callable[[Notification], bool] = lambda _: True,
) -> list[Notification]:
    """Pull and ack messages until ``expect`` of those ``keep`` accepts arrived (or, with ``expect=None``, until
    ``timeout``); returns those."""
    got: list[Notification] = []
    deadline = time.monotonic() + timeout
    with emulators.subscriber_client(host) as sub:
        while (remaining := deadline - time.monotonic()) > 0 and (expect is None or len(got) < expect):
            try:
                resp = sub.pull(
                    subscription=subscription_path, max_messages=100, timeout=min(1.0, remaining), retry=None
                )
            except gexc.DeadlineExceeded:
                continue
            if resp.received_messages:
                sub.acknowledge(subscription=subscription_path, ack_ids=[m.ack_id for m in resp.received_messages])
            arrived = [Notification(dict(m.message.attributes), bytes(m.message.data)) for m in resp.received_messages]
            got += [n for n in arrived if keep(n)]
    return got


def create_subscription(host: str, topic: str, project: str = PROJECT) -> str:
    with emulators.subscriber_client(host) as sub:
        path = str(sub.subscription_path(project, f"sub-{uuid.uuid4().hex[:12]}"))
        sub.create_subscription(name=path, topic=f"projects/{project}/topics/{topic}")
    return path


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    log = tmp_path_factory.mktemp("pubsub-emulator") / "pubsub-emulator.log"
    service = emulators.start_pubsub_emulator(emulators.free_port(), log)
    if service is None:
        pytest.skip("Pub/Sub emulator not installed (need java + the gcloud SDK 'pubsub-emulator' component)")
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def gcs_emulator(pubsub_emulator: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """fake-gcs-server (memory backend) publishing OBJECT_FINALIZE to projects/test-project/topics/gcs-events."""
    emulators.ensure_topic(pubsub_emulator.host, PROJECT, TOPIC)  # events to a missing topic are dropped
    log = tmp_path_factory.mktemp("fake-gcs") / "fake-gcs.log"
    target = PubsubTarget(pubsub_emulator.host, PROJECT, TOPIC)
    service = emulators.start_fake_gcs(emulators.free_port(), None, log, target)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def storage_client(gcs_emulator: Service) -> storage.Client:
    return emulators.storage_client(gcs_emulator.host, PROJECT)


@pytest.fixture
def bucket_name(storage_client: storage.Client) -> str:
    """A fresh bucket in the fake server, unique per test: empty but for the trusted evaluation set (seed_evalset)."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    seed_evalset(storage_client.create_bucket(name))
    return name


@pytest.fixture
def gcs_subscription(pubsub_emulator: Service, gcs_emulator: Service) -> Iterator[str]:
    """A fresh subscription to the GCS notification topic; it only sees events published after creation."""
    path = create_subscription(pubsub_emulator.host, TOPIC)
    yield path
    with emulators.subscriber_client(pubsub_emulator.host) as sub:
        sub.delete_subscription(subscription=path)
