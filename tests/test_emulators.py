"""Integration tests for devstack.emulators against the real emulators on loopback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from google.cloud import storage

from core import layout
from devstack import emulators
from devstack.emulators import PubsubTarget, Service
from tests.emulator_fixtures import PROJECT, TOPIC, Notification, create_subscription, drain

NOTIFICATION_ATTRIBUTES = {"bucketId", "objectId", "objectGeneration", "eventType", "payloadFormat"}


def _ours(bucket: str) -> Callable[[Notification], bool]:
    """The test's own notifications: its bucket's, without the trusted evaluation set every test bucket is seeded
    with (its notification may arrive after the test's subscription exists)."""
    return lambda n: n.attributes.get("bucketId") == bucket and not n.attributes["objectId"].startswith(layout.EVAL)


def _gone(pid: int) -> bool:
    """True if ``pid`` no longer exists or is only a zombie awaiting its (non-us) parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((emulators.LOOPBACK, port)) == 0


@pytest.mark.integration
def test_upload_publishes_object_finalize_with_metadata(
    storage_client: storage.Client, bucket_name: str, gcs_subscription: str, pubsub_emulator: Service
) -> None:
    blob = storage_client.bucket(bucket_name).blob("models/iris-v1.joblib")
    blob.metadata = {"sha256": "ab" * 32, "signature": "sig-v1"}
    blob.upload_from_string(b"model-bytes", content_type="application/octet-stream")

    messages = drain(gcs_subscription, pubsub_emulator.host, timeout=10, expect=1, keep=_ours(bucket_name))

    assert len(messages) == 1
    attrs = messages[0].attributes
    assert attrs.keys() >= NOTIFICATION_ATTRIBUTES
    assert attrs["eventType"] == "OBJECT_FINALIZE"
    assert attrs["payloadFormat"] == "JSON_API_V1"
    assert attrs["bucketId"] == bucket_name
    assert attrs["objectId"] == "models/iris-v1.joblib"
    assert attrs["objectGeneration"] == str(blob.generation)
    data = messages[0].json()
    assert data["name"] == "models/iris-v1.joblib"
    assert data["bucket"] == bucket_name
    assert data["generation"] == str(blob.generation)
    assert data["size"] == str(len(b"model-bytes"))
    assert data["metadata"] == {"sha256": "ab" * 32, "signature": "sig-v1"}


@pytest.mark.integration
def test_copy_and_create_only_uploads_publish_finalize(
    storage_client: storage.Client, bucket_name: str, gcs_subscription: str, pubsub_emulator: Service
) -> None:
    bucket = storage_client.bucket(bucket_name)
    source = bucket.blob("staging/model")
    source.metadata = {"version": "7"}
    source.upload_from_string(b"v7", if_generation_match=0)
    copy = bucket.copy_blob(source, bucket, "models/current")

    messages = drain(gcs_subscription, pubsub_emulator.host, timeout=10, expect=2, keep=_ours(bucket_name))

    by_object = {m.attributes["objectId"]: m for m in messages}
    assert set(by_object) == {"staging/model", "models/current"}
    assert {m.attributes["eventType"] for m in messages} == {"OBJECT_FINALIZE"}
    assert by_object["models/current"].attributes["objectGeneration"] == str(copy.generation)
    assert by_object["models/current"].json()["metadata"] == {"version": "7"}


@pytest.mark.integration
def test_delete_and_metadata_update_events_when_enabled(pubsub_emulator: Service, tmp_path: Path) -> None:
    topic = "gcs-all-events"
    emulators.ensure_topic(pubsub_emulator.host, PROJECT, topic)
    subscription = create_subscription(pubsub_emulator.host, topic)
    target = PubsubTarget(pubsub_emulator.host, PROJECT, topic)
    events = ("finalize", "delete", "metadataUpdate")
    gcs = emulators.start_fake_gcs(emulators.free_port(), None, tmp_path / "gcs.log", target, events)
    try:
        bucket = emulators.ensure_bucket(gcs.host, PROJECT, "all-events")
        blob = bucket.blob("obj")
        blob.upload_from_string(b"x")
        blob.metadata = {"k": "v"}
        blob.patch()
        blob.delete()
        messages = drain(subscription, pubsub_emulator.host, timeout=10, expect=3)
    finally:
        gcs.stop()

    types = sorted(m.attributes["eventType"] for m in messages)
    assert types == ["OBJECT_DELETE", "OBJECT_FINALIZE", "OBJECT_METADATA_UPDATE"]
    update = next(m for m in messages if m.attributes["eventType"] == "OBJECT_METADATA_UPDATE")
    assert update.json()["metadata"] == {"k": "v"}


@pytest.mark.integration
def test_filesystem_backend_keeps_objects_across_restart(tmp_path: Path) -> None:
    root, port = tmp_path / "gcs-root", emulators.free_port()
    first = emulators.start_fake_gcs(port, root, tmp_path / "gcs-1.log")
    try:
        blob = emulators.ensure_bucket(first.host, PROJECT, "durable").blob("models/m.bin")
        blob.metadata = {"sha256": "cafe"}
        blob.upload_from_string(b"persisted")
    finally:
        first.stop()
    assert not first.alive()

    second = emulators.start_fake_gcs(port, root, tmp_path / "gcs-2.log")
    try:
        client = emulators.storage_client(second.host, PROJECT)
        again = client.bucket("durable").get_blob("models/m.bin")
        assert again is not None
        assert again.download_as_bytes() == b"persisted"
        assert again.metadata == {"sha256": "cafe"}
        assert again.generation == blob.generation
    finally:
        second.stop()


@pytest.mark.integration
def test_stop_ends_fake_gcs(tmp_path: Path) -> None:
    service = emulators.start_fake_gcs(emulators.free_port(), None, tmp_path / "gcs.log")
    assert service.alive()
    assert _port_open(service.port)

    assert service.stop() is not None

    assert not service.alive()
    assert _gone(service.process.pid)
    assert not _port_open(service.port)


@pytest.mark.integration
def test_stop_kills_whole_group_and_escalates_to_sigkill(tmp_path: Path) -> None:
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    proc.stdout.close()
    service = Service("stubborn", f"{emulators.LOOPBACK}:1", proc, tmp_path / "none.log")

    started = time.monotonic()
    assert service.stop(timeout=0.5) == -signal.SIGKILL

    assert time.monotonic() - started < 5
    assert not service.alive()
    deadline = time.monotonic() + 5
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(grandchild), "SIGTERM to the process group should have ended the grandchild"


@pytest.mark.integration
def test_start_fake_gcs_reports_startup_failure(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind((emulators.LOOPBACK, 0))
        busy.listen()
        with pytest.raises(RuntimeError, match="address already in use"):
            emulators.start_fake_gcs(busy.getsockname()[1], None, tmp_path / "gcs.log")


@pytest.mark.integration
def test_clients_ignore_pubsub_emulator_host_env(
    pubsub_emulator: Service, gcs_emulator: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")  # nothing listens there
    path = emulators.ensure_topic(pubsub_emulator.host, PROJECT, "explicit-host")
    assert emulators.ensure_topic(pubsub_emulator.host, PROJECT, "explicit-host") == path
    with emulators.publisher_client(pubsub_emulator.host) as client:
        topics = {t.name for t in client.list_topics(request={"project": f"projects/{PROJECT}"})}
    assert {path, f"projects/{PROJECT}/topics/{TOPIC}"} <= topics


@pytest.mark.integration
def test_ensure_bucket_is_idempotent(gcs_emulator: Service) -> None:
    first = emulators.ensure_bucket(gcs_emulator.host, PROJECT, "idempotent-bucket")
    second = emulators.ensure_bucket(gcs_emulator.host, PROJECT, "idempotent-bucket")
    assert first.name == second.name == "idempotent-bucket"
    listed = [b.name for b in emulators.storage_client(gcs_emulator.host, PROJECT).list_buckets()]
    assert listed.count("idempotent-bucket") == 1


@pytest.mark.integration
def test_public_urls_point_at_loopback(storage_client: storage.Client, bucket_name: str, gcs_emulator: Service) -> None:
    blob = storage_client.bucket(bucket_name).blob("a.txt")
    blob.upload_from_string(b"a")
    blob.reload()
    assert blob.media_link.startswith(f"http://{gcs_emulator.host}/")
    assert blob.public_url.startswith(f"http://{gcs_emulator.host}/")
    assert storage_client.bucket(bucket_name).blob("a.txt").download_as_bytes() == b"a"


@pytest.mark.integration
def test_pubsub_emulator_command_is_none_without_sdk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(emulators.shutil, "which", lambda _name: None)
    monkeypatch.setattr(emulators, "DEFAULT_SDK_ROOT", tmp_path / "no-sdk")
    assert emulators.pubsub_emulator_command(8085) is None
    assert emulators.start_pubsub_emulator(8085, tmp_path / "log") is None
    assert not (tmp_path / "log").exists()
