"""The pulled images' default commands against the emulators, run as the manifests run them.

The trainer image publishes a signed model; the predictor image, as uid 10001 with a read-only root and only the
manifest's emptyDirs writable, serves it, and hot-swaps every worker to a second model on the bucket notification.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from google.cloud import storage
from sklearn.pipeline import Pipeline

from core.schema import EXAMPLES
from core.store import ModelStore
from devstack import images
from devstack.emulators import Service, free_port, spawn
from tests.images.conftest import Pulled
from tests.images.pods import Workload, podman, run_command, workload
from tests.polling import wait_for
from tests.predictor.events_fixtures import publish_model, registry_for, settings_from_env

pytestmark = [pytest.mark.images, pytest.mark.integration, pytest.mark.timeout(1800)]

PROJECT, TOPIC, KEY = "test-project", "gcs-events", "image-test-signing-key"
SERVING = re.compile(r'^predictor_model_serving\{version="([^"]+)"\} (\S+)$', re.MULTILINE)
START_TIMEOUT = 180.0  # a vfs container copy of the image, then importing scikit-learn, on a shared machine


@pytest.fixture(scope="module")
def env(gcs_emulator: Service, pubsub_emulator: Service, storage_client: storage.Client) -> dict[str, str]:
    """Where the containers find the emulators, on a bucket of this module."""
    bucket = f"images-{uuid.uuid4().hex[:12]}"
    storage_client.create_bucket(bucket)
    return {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "GCS_BUCKET": bucket,
        "STORAGE_EMULATOR_HOST": gcs_emulator.host,
        "PUBSUB_EMULATOR_HOST": pubsub_emulator.host,
        "MODEL_EVENTS_TOPIC": TOPIC,
        "GCS_RETRY_DEADLINE": "10",
        "RECONCILE_INTERVAL": "300",  # longer than the test: only the notification can swap
    }


@pytest.fixture(scope="module")
def store(env: dict[str, str]) -> ModelStore:
    return registry_for(settings_from_env({**env, "MODEL_SIGNING_KEY": KEY})).store


def container_flags(work: Workload, volume_root: Path) -> list[str]:
    secrets = {"iris-secrets": {"model-signing-key": KEY}}
    return [*work.security_flags(), *work.mount_flags(secrets, volume_root)]


@pytest.fixture(scope="module")
def trainer_run(
    run_storage: images.Storage,
    pulled: dict[str, Pulled],
    env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> subprocess.CompletedProcess[str]:
    """The trainer image's default command, once, as the CronJob runs it (its mounts, user and ConfigMaps)."""
    work = workload("CronJob", "iris-trainer")
    flags = container_flags(work, tmp_path_factory.mktemp("trainer-volumes"))
    name = f"iris-trainer-{uuid.uuid4().hex[:8]}"
    cmd = run_command(run_storage, pulled["trainer"].ref, name, flags, {**work.env(), **env})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def test_trainer_image_publishes_a_signed_model(
    trainer_run: subprocess.CompletedProcess[str], store: ModelStore
) -> None:
    assert trainer_run.returncode == 0, trainer_run.stderr[-3000:]
    summary = json.loads(trainer_run.stdout.strip().splitlines()[-1])
    assert summary["status"] == "published", summary
    loaded = store.newest_valid()  # checks the signature and the content hash, unpickles, warms up
    assert loaded is not None
    assert loaded.version == summary["model_version"]


@pytest.fixture(scope="module")
def predictor(
    run_storage: images.Storage,
    pulled: dict[str, Pulled],
    env: dict[str, str],
    trainer_run: subprocess.CompletedProcess[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Service, Workload]]:
    """The predictor image's default command as the Deployment runs it, on a free port of the host's network."""
    work = workload("Deployment", "iris-predictor")
    logs = tmp_path_factory.mktemp("predictor")
    name, port = f"iris-predictor-{uuid.uuid4().hex[:8]}", free_port()
    pod_env = {**work.env(), **env, "PORT": str(port), "POD_NAME": name}
    cmd = run_command(run_storage, pulled["predictor"].ref, name, container_flags(work, logs / "volumes"), pod_env)
    service = spawn(name, cmd, port, logs / "predictor.log")
    try:
        ready = f"{service.url}/v2/health/ready"
        wait_for(lambda: requests.get(ready, timeout=2).ok, START_TIMEOUT, "the predictor to be ready", 0.5, service)
        yield service, work
    finally:
        service.stop(timeout=30)
        podman(run_storage, "rm", "--force", "--ignore", name)


def serving(service: Service) -> dict[str, float]:
    text = requests.get(f"{service.url}/metrics", timeout=5).text
    return {version: float(count) for version, count in SERVING.findall(text) if float(count) > 0}


def test_predictor_image_serves_the_trainers_model(
    predictor: tuple[Service, Workload], trainer_run: subprocess.CompletedProcess[str]
) -> None:
    service, work = predictor
    version = json.loads(trainer_run.stdout.strip().splitlines()[-1])["model_version"]
    workers = float(work.env()["WEB_CONCURRENCY"])
    wait_for(lambda: serving(service) == {version: workers}, 60, f"every worker to serve {version}", 0.5, service)
    flower = EXAMPLES["virginica"]
    answer = requests.post(f"{service.url}/predict", json={"instances": [list(flower)]}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == version
    assert answer.json()["predictions"][0]["species"] == "virginica"
    api = requests.post(f"{service.url}/api", json=list(EXAMPLES["setosa"]), timeout=10)
    assert (api.status_code, api.json()) == (200, "[0]")
    assert requests.get(f"{service.url}/v2/health/ready", timeout=5).status_code == 200


def test_predictor_root_is_read_only_but_the_mounts(
    predictor: tuple[Service, Workload], run_storage: images.Storage
) -> None:
    service, work = predictor
    probe = "for d in / /app /opt/venv /etc /var /home /run %s; do touch $d/.w 2>/dev/null && echo $d; done; id -u"
    script = probe % " ".join(work.writable_paths())
    done = podman(run_storage, "exec", service.name, "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    *writable, uid = done.stdout.split()
    assert uid == "10001"
    assert sorted(writable) == sorted(work.writable_paths())
    assert "/run/prometheus" in writable  # the image's PROMETHEUS_MULTIPROC_DIR, an emptyDir in the manifest


def test_predictor_image_hot_swaps_every_worker_on_notification(
    predictor: tuple[Service, Workload], store: ModelStore, fitted_model: Pipeline
) -> None:
    service, work = predictor
    workers = float(work.env()["WEB_CONCURRENCY"])
    version = publish_model(store, fitted_model).version
    wait_for(lambda: serving(service) == {version: workers}, 30, f"every worker to serve {version}", 0.2, service)
    answer = requests.post(f"{service.url}/predict", json={"instances": [list(EXAMPLES["setosa"])]}, timeout=10)
    assert answer.json()["model_version"] == version
