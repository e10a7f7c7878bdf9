"""Hot swaps across real pods: two `python -m predictor` processes with two gunicorn workers each, on the emulators.

Each pod's model agent holds one subscription and hands every new model to the pod's workers over local disk, so one
OBJECT_FINALIZE reaches all four workers; the reconcile interval is 300 s, so only notifications can cause the swaps
measured here.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from google.cloud import storage
from sklearn.pipeline import Pipeline

from core.iris import EXAMPLES
from core.store import ModelStore
from devstack.emulators import Service, free_port, spawn
from tests import keys
from tests.emulator_fixtures import PROJECT, TOPIC, bucket_env
from tests.polling import wait_for
from tests.predictor.agent.subscription_fixtures import publish_model, registry_for, settings_from_env, subscriptions

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WORKERS, GRACEFUL_TIMEOUT = 2, 10
START_TIMEOUT = 60.0
SERVING = re.compile(r'^predictor_model_serving\{version="([^"]+)"\} (\S+)$', re.MULTILINE)
FLOWER = {"instances": [list(EXAMPLES["setosa"])]}


@dataclass
class Pod:
    name: str
    service: Service

    @property
    def url(self) -> str:
        return self.service.url

    def serving(self) -> dict[str, float]:
        """Workers serving each version, from the pod's aggregated /metrics."""
        try:
            text = requests.get(f"{self.url}/metrics", timeout=2).text
        except requests.RequestException:
            return {}
        return {version: float(count) for version, count in SERVING.findall(text) if float(count) > 0}

    def subscriptions(self, host: str) -> list[str]:
        return [s for s in subscriptions(host, PROJECT, TOPIC) if f"/predictor-{self.name}-" in s]


@pytest.fixture(scope="module")
def swap_env(gcs_emulator: Service, pubsub_emulator: Service, storage_client: storage.Client) -> dict[str, str]:
    """The pods' environment, on a bucket of this module."""
    return (
        bucket_env(storage_client, gcs_emulator, pubsub_emulator, "swap")
        | keys.env()
        | {
            "GCS_RETRY_DEADLINE": "5",
            "WEB_CONCURRENCY": str(WORKERS),
            "RECONCILE_INTERVAL": "300",
            "GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT),
            "LOG_LEVEL": "INFO",
        }
    )


@pytest.fixture(scope="module")
def swap_store(swap_env: dict[str, str]) -> ModelStore:
    return registry_for(settings_from_env(swap_env)).store


@pytest.fixture(scope="module")
def pods(
    swap_env: dict[str, str], swap_store: ModelStore, fitted_model: Pipeline, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Pod]]:
    first = publish_model(swap_store, fitted_model)
    logs = tmp_path_factory.mktemp("pods")
    started = [start_pod(name, swap_env, logs) for name in ("pod-a", "pod-b")]
    try:
        wait_for(lambda: all(all_serve(pod, first.version) for pod in started), START_TIMEOUT, "pods to load", 0.2)
        yield started
    finally:
        for pod in started:
            pod.service.stop()


def start_pod(name: str, env: dict[str, str], logs: Path) -> Pod:
    port = free_port()
    full_env = {"PATH": os.environ["PATH"], "HOME": str(logs), **env, "PORT": str(port), "POD_NAME": name}
    log_path = logs / f"{name}.log"
    return Pod(name, spawn(name, [sys.executable, "-m", "predictor"], port, log_path, full_env, cwd=REPO))


def all_serve(pod: Pod, version: str) -> bool:
    if not pod.service.alive():
        raise AssertionError(f"{pod.name} exited:\n{pod.service.log_tail(40)}")
    return pod.serving() == {version: float(WORKERS)}


def swap_and_wait(pods: list[Pod], store: ModelStore, model: Pipeline) -> tuple[str, float]:
    """Publish a model; seconds until every worker of every pod serves it."""
    version = publish_model(store, model).version
    published = time.monotonic()
    wait_for(lambda: all(all_serve(pod, version) for pod in pods), 10, f"every worker to serve {version}", 0.01)
    return version, time.monotonic() - published


def test_one_notification_swaps_every_worker_of_every_pod(
    pods: list[Pod], swap_store: ModelStore, fitted_model: Pipeline, pubsub_emulator: Service
) -> None:
    for pod in pods:
        assert len(pod.subscriptions(pubsub_emulator.host)) == 1  # the agent's, not one per worker
    version, delay = swap_and_wait(pods, swap_store, fitted_model)
    print(f"\nnotification -> all {len(pods) * WORKERS} workers serving: {delay:.3f} s")
    assert delay < 5
    for pod in pods:  # new connections land on either worker
        answers = [requests.post(f"{pod.url}/predict", json=FLOWER, timeout=5) for _ in range(30)]
        assert {a.headers["X-Model-Version"] for a in answers} == {version}
        info = requests.get(f"{pod.url}/v1/model", timeout=5).json()
        assert (info["model_version"], info["loaded_trigger"]) == (version, "notification")


class Load:
    """Client threads posting /predict to every pod until stopped (at most `limit` requests each)."""

    def __init__(self, pods: list[Pod], threads: int = 4, limit: int = 5000) -> None:
        self.results: Counter[str] = Counter()
        self.mismatches: list[tuple[str, str]] = []
        self._stop, self._lock = threading.Event(), threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(pods, i, limit)) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, pods: list[Pod], index: int, limit: int) -> None:
        keep_alive = index % 2 == 1  # half the threads reuse connections, half open a new one each time
        with requests.Session() as session:
            for n in range(limit):
                if self._stop.is_set():
                    return
                self._record(self._one(session, pods[n % len(pods)].url, keep_alive))

    def _one(self, session: requests.Session, url: str, keep_alive: bool) -> tuple[str, str | None, str | None]:
        headers = {} if keep_alive else {"Connection": "close"}
        try:
            response = session.post(f"{url}/predict", json=FLOWER, headers=headers, timeout=10)
            body = response.json()
        except (requests.RequestException, ValueError) as e:
            return f"error {type(e).__name__}", None, None
        return str(response.status_code), response.headers.get("X-Model-Version"), body.get("model_version")

    def _record(self, result: tuple[str, str | None, str | None]) -> None:
        status, header, body = result
        with self._lock:
            self.results[status] += 1
            if header != body:
                self.mismatches.append((str(header), str(body)))


def test_five_swaps_under_load_fail_no_request(pods: list[Pod], swap_store: ModelStore, fitted_model: Pipeline) -> None:
    delays = []
    with Load(pods) as load:
        time.sleep(0.5)
        for _ in range(5):
            delays.append(swap_and_wait(pods, swap_store, fitted_model)[1])
            time.sleep(0.3)
    print(f"\nswap delays under load (all workers): {', '.join(f'{d:.3f}' for d in delays)} s; requests {load.results}")
    assert set(load.results) == {"200"}, load.results
    assert load.results["200"] > 100
    assert load.mismatches == []


def test_sigterm_deletes_the_pods_subscription(pods: list[Pod], pubsub_emulator: Service) -> None:
    leaving, staying = pods
    assert len(leaving.subscriptions(pubsub_emulator.host)) == 1
    started = time.monotonic()
    leaving.service.process.terminate()  # SIGTERM to the master only, as Kubernetes does
    leaving.service.process.wait(GRACEFUL_TIMEOUT + 5)
    print(f"\npod stopped {time.monotonic() - started:.2f} s after SIGTERM")
    assert leaving.subscriptions(pubsub_emulator.host) == []
    assert len(staying.subscriptions(pubsub_emulator.host)) == 1
    log = leaving.service.log_path.read_text()
    assert log.count("model events: deleted subscription") == 1
