"""The function behind a real functions-framework server: CloudEvents over HTTP, and the local Pub/Sub bridge."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cloudevents.conversion import to_binary, to_structured
from google.cloud import storage

from devstack import emulators
from devstack.emulators import Service
from tests.emulator_fixtures import PROJECT, TOPIC
from tests.functions.helpers import MIXED_CSV, VALID_CSV, event_for, names, upload
from tests.polling import wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def server_bucket(storage_client: storage.Client) -> storage.Bucket:
    return storage_client.create_bucket(f"test-fn-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def server_env(gcs_emulator: Service, pubsub_emulator: Service, server_bucket: storage.Bucket) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "GCS_BUCKET": server_bucket.name,
        "STORAGE_EMULATOR_HOST": gcs_emulator.host,
        "PUBSUB_EMULATOR_HOST": pubsub_emulator.host,
        "INCOMING_EVENTS_TOPIC": TOPIC,
        "GCS_RETRY_DEADLINE": "5",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }


@pytest.fixture(scope="module")
def function_url(function_server: Service) -> str:
    return function_server.url + "/"


@pytest.fixture(scope="module")
def function_server(server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """functions-framework serving functions/main.py:ingest_upload on a free loopback port."""
    port, log_path = emulators.free_port(), tmp_path_factory.mktemp("function") / "function.log"
    command = [str(BIN / "functions-framework"), "--source", "functions/main.py", "--target", "ingest_upload"]
    command += ["--signature-type", "cloudevent", "--host", emulators.LOOPBACK, "--port", str(port)]
    service = emulators.spawn("function", command, port, log_path, server_env, cwd=REPO)
    try:
        wait_for(lambda: _answers(service.url), 20, "functions-framework", interval=0.05, service=service)
        yield service
    finally:
        service.stop()


def test_binary_cloudevent_over_http_promotes_and_logs_one_json_line(
    server_bucket: storage.Bucket, function_server: Service, function_url: str
) -> None:
    source = upload(server_bucket, "incoming/http-valid.csv", VALID_CSV)
    headers, body = to_binary(event_for(source))

    response = requests.post(function_url, headers=headers, data=body, timeout=30)

    assert response.status_code == 200
    assert names(server_bucket, "data/http-valid") == ["data/http-valid.csv"]
    assert names(server_bucket, "incoming/http-valid") == []
    line = _log_line(function_server, "incoming/http-valid.csv")
    assert line["severity"] == "INFO"
    assert line["ingest"]["status"] == "promoted"
    assert (line["ingest"]["rows_total"], line["ingest"]["rows_valid"]) == (3, 3)


def test_structured_cloudevent_of_a_bad_file_is_quarantined(
    server_bucket: storage.Bucket, function_server: Service, function_url: str
) -> None:
    source = upload(server_bucket, "incoming/http-mixed.csv", MIXED_CSV)
    headers, body = to_structured(event_for(source))

    response = requests.post(function_url, headers=headers, data=body, timeout=30)

    assert response.status_code == 200
    assert names(server_bucket, "quarantine/http-mixed") == [
        "quarantine/http-mixed.csv",
        "quarantine/http-mixed.csv.error.json",
    ]
    line = _log_line(function_server, "incoming/http-mixed.csv")
    assert (line["severity"], line["ingest"]["status"], line["ingest"]["rows_invalid"]) == ("WARNING", "quarantined", 2)


def test_a_request_with_another_host_is_refused_before_the_function_runs(
    server_bucket: storage.Bucket, function_url: str
) -> None:
    source = upload(server_bucket, "incoming/http-rebound.csv", VALID_CSV)
    headers, body = to_binary(event_for(source))

    response = requests.post(function_url, headers=headers | {"Host": "evil.example:8081"}, data=body, timeout=30)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "host_not_allowed"
    assert names(server_bucket, "incoming/http-rebound") == ["incoming/http-rebound.csv"]  # not ingested
    assert requests.post(function_url, headers=headers, data=body, timeout=30).status_code == 200
    assert names(server_bucket, "data/http-rebound") == ["data/http-rebound.csv"]


def test_bridge_delivers_uploads_from_pubsub_with_no_further_action(
    server_bucket: storage.Bucket, function_url: str, server_env: dict[str, str], tmp_path: Path
) -> None:
    bridge = emulators.spawn(
        "bridge",
        [sys.executable, "-m", "devstack.bridge", "--function-url", function_url, "--retry-delay", "1"],
        0,
        tmp_path / "bridge.log",
        server_env,
        cwd=REPO,
    )
    try:
        wait_for(
            lambda: _subscribed(server_env["PUBSUB_EMULATOR_HOST"], bridge.process.pid), 20, "bridge", service=bridge
        )
        upload(server_bucket, "incoming/bridged.csv", VALID_CSV)
        upload(server_bucket, "models/ignored.bin", b"not for the function")

        def ingested() -> bool:
            return names(server_bucket, "incoming/bridged") == [] and bool(names(server_bucket, "data/bridged"))

        wait_for(ingested, 20, "delivery", interval=0.05, service=bridge)
        assert names(server_bucket, "data/bridged") == ["data/bridged.csv"]
        assert names(server_bucket, "models/") == ["models/ignored.bin"]
    finally:
        assert bridge.stop() == 0
    assert not _subscribed(server_env["PUBSUB_EMULATOR_HOST"], bridge.process.pid)


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return False
    return True


def _subscribed(pubsub_host: str, pid: int) -> bool:
    with emulators.publisher_client(pubsub_host) as publisher:
        subscriptions = publisher.list_topic_subscriptions(topic=publisher.topic_path(PROJECT, TOPIC))
        return any(f"/ingest-bridge-{pid}-" in s for s in subscriptions)


def _log_line(server: Service, source: str) -> dict:
    """The one JSON log line the function wrote about `source`."""
    lines = [json.loads(x) for x in server.log_path.read_text().splitlines() if x.startswith("{")]
    [line] = [x for x in lines if x.get("ingest", {}).get("source") == source]
    return line
