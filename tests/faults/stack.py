"""The stack the fault checks run against: own emulators (restartable on the same port), a bucket, predictor pods.

Every process is started in its own session and stopped by PID (devstack.emulators.Service).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from google.cloud import storage

from core import gcs
from core.settings import CommonSettings
from core.signing import Keyring
from core.store import ModelStore
from devstack import emulators
from devstack.emulators import PubsubTarget, Service
from tests import keys
from tests.emulator_fixtures import create_subscription, drain, seed_evalset
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "fault-project"
ADMIN_TOKEN = "fault-admin-token-0123"
TEARDOWN_GRACE = 2.0


@dataclass
class Emulators:
    """The Pub/Sub emulator and fake-gcs-server (filesystem backend) of one stack, restartable in place."""

    workdir: Path
    topic: str
    pubsub: Service
    gcs: Service

    @property
    def gcs_root(self) -> Path:
        return self.workdir / "gcs"

    def stop_pubsub(self) -> None:
        self.pubsub.stop()

    def restart_pubsub(self) -> None:
        """Start an EMPTY emulator on the same port and recreate the topic (subscriptions are the pods' job)."""
        service = emulators.start_pubsub_emulator(self.pubsub.port, self.workdir / "pubsub.log")
        assert service is not None
        self.pubsub = service
        emulators.ensure_topic(service.host, PROJECT, self.topic)

    def stop_gcs(self) -> None:
        self.gcs.stop()

    def restart_gcs(self) -> None:
        """fake-gcs-server again on the same port and root: the bucket and its objects are still there."""
        target = PubsubTarget(self.pubsub.host, PROJECT, self.topic)
        self.gcs = emulators.start_fake_gcs(self.gcs.port, self.gcs_root, self.workdir / "gcs.log", target)

    def subscriptions(self) -> list[str]:
        """Subscriptions attached to the topic, from the emulator's admin API."""
        with emulators.publisher_client(self.pubsub.host) as client:
            topic = client.topic_path(PROJECT, self.topic)
            return sorted(client.list_topic_subscriptions(request={"topic": topic}, timeout=5))

    def stop(self) -> None:
        self.gcs.stop()
        self.pubsub.stop()


def start_emulators(workdir: Path) -> Emulators:
    """Both emulators on free ports with the topic created first (events to a missing topic are dropped)."""
    topic = f"model-events-{uuid.uuid4().hex[:8]}"
    pubsub = emulators.start_pubsub_emulator(emulators.free_port(), workdir / "pubsub.log")
    if pubsub is None:
        import pytest

        pytest.skip("Pub/Sub emulator not installed")
    emulators.ensure_topic(pubsub.host, PROJECT, topic)
    (workdir / "gcs").mkdir(parents=True, exist_ok=True)
    target = PubsubTarget(pubsub.host, PROJECT, topic)
    gcs_service = emulators.start_fake_gcs(emulators.free_port(), workdir / "gcs", workdir / "gcs.log", target)
    return Emulators(workdir, topic, pubsub, gcs_service)


@dataclass
class Pod:
    """One `python -m predictor` process group (gunicorn master and its workers)."""

    name: str
    port: int
    service: Service
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.service.process.pid

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 5)
        return requests.get(self.url + path, **kwargs)

    def status(self, path: str) -> int:
        try:
            return self.get(path, headers={"Connection": "close"}).status_code
        except requests.RequestException:
            return 0

    def model(self) -> dict[str, Any]:
        resp = self.get("/v1/model")
        resp.raise_for_status()
        return dict(resp.json())

    def served(self, tries: int = 12) -> set[str]:
        """Versions answering /predict over `tries` new connections (spread over the workers)."""
        from tests.faults.load import PREDICT_BODY

        seen = set()
        for _ in range(tries):
            resp = requests.post(self.url + "/predict", json=PREDICT_BODY, headers={"Connection": "close"}, timeout=5)
            ok = resp.status_code == 200
            seen.add(resp.headers.get("X-Model-Version", "none") if ok else f"status {resp.status_code}")
        return seen

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(lambda: self.status("/v2/health/ready") == 200 or self._died(), timeout, f"pod {self.name} ready")
        assert self.service.alive(), f"pod {self.name} exited:\n{self.service.log_tail()}"

    @property
    def workers(self) -> int:
        return int(self.env["WEB_CONCURRENCY"])

    def all_serving(self, version: str) -> bool:
        """Every worker serves `version`: the pod's livesum gauge, confirmed by answers over new connections."""
        from tests.faults.metrics_text import serving

        return serving(self.url) == {version: self.workers} and self.served(4) == {version}

    def wait_serving(self, version: str, timeout: float = 30) -> float:
        """Poll until every worker serves `version`; returns the seconds waited."""
        started = time.monotonic()
        wait_for(lambda: self.all_serving(version), timeout, f"pod {self.name} serving {version}", interval=0.1)
        return time.monotonic() - started

    def terminate(self) -> None:
        """SIGTERM to the master only, as the kubelet does; the caller waits."""
        os.kill(self.pid, signal.SIGTERM)

    def stop(self) -> None:
        self.service.stop(timeout=30)

    def log_errors(self, since: int = 0) -> list[str]:
        """ERROR/CRITICAL lines and tracebacks the pod logged after byte offset `since`."""
        with self.service.log_path.open("rb") as log:
            log.seek(since)
            lines = log.read().decode(errors="replace").splitlines()
        return [line[:300] for line in lines if '"severity": "ERROR"' in line or "CRITICAL" in line
                or line.startswith("Traceback")]  # fmt: skip

    def worker_pids(self) -> set[int]:
        """PIDs of the gunicorn workers (children of the master but the model agent), from /proc."""
        pids = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                agent = b"predictor.agent" in (stat.parent / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.pid and fields[0] != "Z" and not agent:
                pids.add(int(stat.parent.name))
        return pids

    def log_size(self) -> int:
        return self.service.log_path.stat().st_size

    def _died(self) -> bool:
        return not self.service.alive()


def spawn(name: str, cmd: list[str], env: dict[str, str], log_path: Path, port: int = 0) -> Service:
    """A project process in its own session, output to `log_path`, cwd at the repository root."""
    return emulators.spawn(name, cmd, port, log_path, env, cwd=ROOT)


@dataclass
class Stack:
    """Emulators, one bucket with a model store, and the pods started on it."""

    emu: Emulators
    bucket_name: str
    pods: list[Pod] = field(default_factory=list)
    others: list[Service] = field(default_factory=list)

    @property
    def workdir(self) -> Path:
        return self.emu.workdir

    def client(self) -> storage.Client:
        return emulators.storage_client(self.emu.gcs.host, PROJECT)

    def bucket(self) -> storage.Bucket:
        return self.client().bucket(self.bucket_name)

    def store(self, keyring: Keyring = keys.KEYRING, deadline: float = 10) -> ModelStore:
        retry = gcs.retry(CommonSettings.model_validate({"gcs_retry_deadline": deadline}))
        return ModelStore(self.bucket(), keyring, retry)

    def notifications_flowing(self, timeout: float, every: float = 5.0) -> float:
        """Seconds until fake-gcs-server's notifications reach the topic again, measured on a subscription of our own:
        a probe object (outside models/, so the pods ignore it) is uploaded every `every` s until one's
        OBJECT_FINALIZE arrives.

        After a long Pub/Sub outage fake-gcs-server's publisher channel can sit in gRPC's reconnect backoff (up to
        120 s) and drops what it could not send in time; that is the emulator's recovery, not the pods'. A check of
        the pods' notification path first waits for this, so it measures the pods alone.
        """
        started, prefix = time.monotonic(), f"probes/{uuid.uuid4().hex[:8]}-"
        path = create_subscription(self.emu.pubsub.host, self.emu.topic, PROJECT)
        try:
            for n in range(int(timeout / every) + 1):
                self.bucket().blob(f"{prefix}{n}").upload_from_string(b"probe")
                if drain(
                    path, self.emu.pubsub.host, every, 1, lambda note: note.attributes["objectId"].startswith(prefix)
                ):
                    return time.monotonic() - started
        finally:
            with emulators.subscriber_client(self.emu.pubsub.host) as sub:
                sub.delete_subscription(subscription=path)
        raise AssertionError(f"fake-gcs-server sent no notification within {timeout:g} s")

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment of a project subprocess on this stack (emulator hosts never inherited)."""
        base = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
        base |= {
            "PYTHONPATH": str(ROOT),
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "GCS_BUCKET": self.bucket_name,
            "STORAGE_EMULATOR_HOST": self.emu.gcs.host,
            "PUBSUB_EMULATOR_HOST": self.emu.pubsub.host,
            "MODEL_EVENTS_TOPIC": self.emu.topic,
            "INCOMING_EVENTS_TOPIC": self.emu.topic,
            **keys.env(),
            "GCS_RETRY_DEADLINE": "5",
            "LOG_LEVEL": "INFO",
        }
        return base | overrides

    def start_pod(self, name: str, **overrides: str) -> Pod:
        """`python -m predictor` as pod `name` on a free port (not waited for)."""
        port = emulators.free_port()
        settings = {"PORT": str(port), "POD_NAME": name, "WEB_CONCURRENCY": "2", "ADMIN_TOKEN": ADMIN_TOKEN,
                    "GRACEFUL_TIMEOUT": "15", "RECONCILE_INTERVAL": "60"}  # fmt: skip
        env = self.env(**(settings | overrides))
        service = spawn(f"pod-{name}", [sys.executable, "-m", "predictor"], env, self.workdir / f"pod-{name}.log", port)
        pod = Pod(name, port, service, env)
        self.pods.append(pod)
        return pod

    def start_pods(self, names: list[str], version: str, per_pod: dict[str, dict[str, str]] | None = None,
                   **env: str) -> list[Pod]:  # fmt: skip
        """Start pods in parallel (`per_pod` adds settings by name) and wait until every worker serves `version`."""
        pods = [self.start_pod(name, **(env | (per_pod or {}).get(name, {}))) for name in names]
        for pod in pods:
            pod.wait_ready(90)
            pod.wait_serving(version, 60)
        return pods

    def stop_pod(self, pod: Pod) -> None:
        pod.stop()
        self.pods.remove(pod)

    def stop(self) -> None:
        """Teardown: every project process at once, SIGKILLed after TEARDOWN_GRACE s (graceful exits have their
        own check), then the emulators."""
        services = [*self.others, *(p.service for p in self.pods)]
        with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
            list(pool.map(lambda s: s.stop(timeout=TEARDOWN_GRACE), services))
        self.emu.stop()


def start_stack(workdir: Path) -> Stack:
    emu = start_emulators(workdir)
    name = f"faults-{uuid.uuid4().hex[:10]}"
    seed_evalset(emulators.ensure_bucket(emu.gcs.host, PROJECT, name))
    return Stack(emu, name)
