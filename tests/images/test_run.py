"""The pulled images' default commands against the emulators, run as the manifests run them.

The trainer image publishes a signed model; the predictor pod's containers from the predictor image (its model agent
sidecar and the image's default command), as uid 10001 with a read-only root and only the manifest's emptyDirs
writable, serve it and hot-swap every worker to a second model on the bucket notification. The pod's nginx proxy
(another image) is left out: requests go to gunicorn's own ports.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from google.cloud import storage
from sklearn.pipeline import Pipeline

from core import gcs
from core.iris import EXAMPLES
from core.store import ModelStore
from devstack.emulators import Service, spawn
from tests import keys
from tests.emulator_fixtures import bucket_env
from tests.images import build as images
from tests.images.conftest import Pulled
from tests.images.pods import Workload, free_ports, podman, run_command, sidecars, with_ports, workload
from tests.polling import wait_for
from tests.predictor.agent.subscription_fixtures import publish_model, settings_from_env

pytestmark = [pytest.mark.images, pytest.mark.integration, pytest.mark.timeout(1800)]

SERVING = re.compile(r'^predictor_model_serving\{version="([^"]+)"\} (\S+)$', re.MULTILINE)
START_TIMEOUT = 180.0  # a vfs container copy of the image, then importing scikit-learn, on a shared machine


def secrets() -> dict[str, dict[str, str]]:
    """The Secrets the manifests mount, holding the test trainer's key pair and split salt."""
    private, public = keys.key_files()
    public_keys = {p.name: p.read_text() for p in public.glob("*.pem")}
    signing = {"private-key.pem": private.read_text(), "split-salt": keys.SPLIT_SALT}
    return {"iris-signing-key": signing, "iris-model-public-keys": public_keys}


@pytest.fixture(scope="module")
def env(gcs_emulator: Service, pubsub_emulator: Service, storage_client: storage.Client) -> dict[str, str]:
    """Where the containers find the emulators, on a bucket of this module."""
    return bucket_env(storage_client, gcs_emulator, pubsub_emulator, "images") | {
        "GCS_RETRY_DEADLINE": "10",
        "RECONCILE_INTERVAL": "300",  # longer than the test: only the notification can swap
    }


@pytest.fixture(scope="module")
def store(env: dict[str, str]) -> ModelStore:
    settings = settings_from_env({**env, **keys.env()})
    return ModelStore(gcs.client(settings).bucket(settings.gcs_bucket), keys.KEYRING, gcs.retry(settings))


def container_flags(work: Workload, volume_root: Path) -> list[str]:
    return [*work.security_flags(), *work.mount_flags(secrets(), volume_root)]


@pytest.fixture(scope="module")
def trainer_run(
    run_storage: images.Storage,
    pulled: dict[str, Pulled],
    env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> subprocess.CompletedProcess[str]:
    """The trainer image's default command, once, with the CronJob's mounts, user and ConfigMaps."""
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


@dataclass
class Pod:
    """The predictor pod's containers from our image, on the host's network with ports of their own."""

    main: Service
    containers: list[Service]
    work: Workload
    ports: dict[str, str]

    def url(self, port_name: str) -> str:
        """Base URL of a port the manifest names (``containerPort`` or an environment port like PORT)."""
        number = next(
            (str(p["containerPort"]) for p in self.work.container.get("ports", []) if p["name"] == port_name), None
        )
        return f"http://127.0.0.1:{self.ports[number or self.work.env()[port_name]]}"

    def check_alive(self) -> None:
        for container in self.containers:
            if not container.alive():
                raise AssertionError(f"{container.name} exited:\n{container.log_tail(40)}")


@pytest.fixture(scope="module")
def pod(
    run_storage: images.Storage,
    pulled: dict[str, Pulled],
    env: dict[str, str],
    trainer_run: subprocess.CompletedProcess[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pod]:
    """The model agent sidecar and the predictor image's default command, sharing the pod's emptyDirs."""
    main = workload("Deployment", "iris-predictor", "predictor")
    assert main.command() == (), "the predictor container runs the image's default command"
    workloads = [*sidecars(main), main]
    logs, suffix = tmp_path_factory.mktemp("pod"), uuid.uuid4().hex[:8]
    ports = free_ports(workloads)
    started: list[Service] = []
    try:
        for work in workloads:
            name = f"iris-{work.container['name']}-{suffix}"
            pod_env = with_ports({**work.env(), **env, "POD_NAME": f"pod-{suffix}"}, ports)
            flags = container_flags(work, logs / "volumes")
            cmd = run_command(run_storage, pulled["predictor"].ref, name, flags, pod_env, work.command())
            started.append(spawn(name, cmd, 0, logs / f"{name}.log"))
        result = Pod(started[-1], started, main, ports)
        probe = main.container["readinessProbe"]["httpGet"]
        # the probe goes through the nginx sidecar's admin port, which this pod runs without: gunicorn's own listener
        ready = f"{result.url('ADMIN_PORT')}{probe['path']}"
        wait_for(
            lambda: requests.get(ready, timeout=2).ok, START_TIMEOUT, "the predictor to be ready", 0.5, started[-1]
        )
        yield result
    finally:
        for service in reversed(started):
            service.stop(timeout=30)
            podman(run_storage, "rm", "--force", "--ignore", service.name)


def serving(pod: Pod) -> dict[str, float]:
    pod.check_alive()
    text = requests.get(f"{pod.url('ADMIN_PORT')}/metrics", timeout=5).text
    return {version: float(count) for version, count in SERVING.findall(text) if float(count) > 0}


def test_predictor_image_serves_the_trainers_model(pod: Pod, trainer_run: subprocess.CompletedProcess[str]) -> None:
    version = json.loads(trainer_run.stdout.strip().splitlines()[-1])["model_version"]
    workers = float(pod.work.env()["WEB_CONCURRENCY"])
    wait_for(lambda: serving(pod) == {version: workers}, 60, f"every worker to serve {version}", 0.5, pod.main)
    answer = requests.post(f"{pod.url('PORT')}/predict", json={"instances": [list(EXAMPLES["virginica"])]}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == version
    assert answer.json()["predictions"][0]["species"] == "virginica"
    api = requests.post(f"{pod.url('PORT')}/api", json=list(EXAMPLES["setosa"]), timeout=10)
    assert (api.status_code, api.json()) == (200, "[0]")


def test_predictor_root_is_read_only_but_the_mounts(pod: Pod, run_storage: images.Storage) -> None:
    probe = "for d in / /app /opt/venv /etc /var /home /run %s; do touch $d/.w 2>/dev/null && echo $d; done; id -u"
    for service in pod.containers:
        work = pod.work if service is pod.main else sidecars(pod.work)[0]
        done = podman(run_storage, "exec", service.name, "sh", "-c", probe % " ".join(work.writable_paths()))
        assert done.returncode == 0, done.stderr
        *writable, uid = done.stdout.split()
        assert uid == "10001"
        assert sorted(writable) == sorted(work.writable_paths())
    assert "/run/prometheus" in pod.work.writable_paths()  # the image's PROMETHEUS_MULTIPROC_DIR


def test_predictor_image_hot_swaps_every_worker_on_notification(
    pod: Pod, store: ModelStore, fitted_model: Pipeline
) -> None:
    workers = float(pod.work.env()["WEB_CONCURRENCY"])
    version = publish_model(store, fitted_model).version
    wait_for(lambda: serving(pod) == {version: workers}, 30, f"every worker to serve {version}", 0.2, pod.main)
    answer = requests.post(f"{pod.url('PORT')}/predict", json={"instances": [list(EXAMPLES["setosa"])]}, timeout=10)
    assert answer.json()["model_version"] == version
