"""Prometheus metrics of one process, correct under gunicorn's multiple worker processes, and their folder's upkeep.

With PROMETHEUS_MULTIPROC_DIR set (``python -m predictor`` sets it before prometheus_client is imported) every worker
writes its samples to files there and GET /metrics (predictor.http.metrics) aggregates all workers with a
MultiProcessCollector; gunicorn's master removes its processes' files at start (``clear_folder``) and its
``child_exit`` hook marks each exited process dead (``forget_process``) so the ``livesum`` gauge forgets dead workers.
The model agent and the gRPC server join the same folder from their own containers under prefixed identities
(``agent-<pid>``, ``grpc-<pid>``), so the pod's /metrics carries every process of the pod. Without it (tests),
the process's own CollectorRegistry is exposed.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from core.iris import CLASSES

AGENT_FILE_PREFIX = "agent-"
"""The model agent's metric files are named ``<type>_agent-<pid>.db``: in a pod the agent sidecar has its own PID
namespace, so a bare pid could equal a serving worker's and both would write the same files."""
GRPC_FILE_PREFIX = "grpc-"
"""The gRPC server's metric files, ``<type>_grpc-<pid>.db``: its container has its own PID namespace too."""


def agent_identity(pid: int) -> str:
    """The identifier the agent process `pid` names its metric files with (and is marked dead under)."""
    return f"{AGENT_FILE_PREFIX}{pid}"


def grpc_identity(pid: int) -> str:
    """The identifier the gRPC server process `pid` names its metric files with."""
    return f"{GRPC_FILE_PREFIX}{pid}"


def name_files_as(identity: Callable[[int], str]) -> None:
    """In a process of its own container, before its first metric exists: write metric files under identity(pid)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import values

        values.ValueClass = values.MultiProcessValue(lambda: identity(os.getpid()))


def name_files_as_agent() -> None:
    """In the agent, before its first metric exists: write metric files under agent_identity(pid)."""
    name_files_as(agent_identity)


def file_identity(path: Path) -> str:
    """Whose metric file `path` is: ``gauge_livesum_123.db`` -> ``123``, ``counter_agent-7.db`` -> ``agent-7``."""
    return path.stem.rsplit("_", 1)[-1]


LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SWAP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    """The metric families and cached label children (a hot request touches three samples)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "predictor_requests", "HTTP requests by route and status.", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "predictor_request_duration_seconds", "HTTP request latency by route and status.",
            ["route", "status"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.predictions = Counter("predictor_predictions", "Predicted instances by species.", ["species"], registry=r)
        self.serving = Gauge(
            "predictor_model_serving",
            "1 per live serving process (gunicorn worker, gRPC server) serving this model version (summed).",
            ["version"], multiprocess_mode="livesum", registry=r,
        )  # fmt: skip
        self.swaps = Counter(
            "predictor_model_swaps", "Model offers by trigger and outcome.", ["trigger", "outcome"], registry=r
        )
        self.rejected = Counter("predictor_artifacts_rejected", "Artifacts refused, by reason.", ["reason"], registry=r)
        self.swap_latency = Histogram(
            "predictor_swap_latency_seconds", "Seconds from an artifact's upload (finalize) to serving it.",
            buckets=SWAP_BUCKETS, registry=r,
        )  # fmt: skip
        # set by the serving process that answers a scrape (predictor.lifecycle.podhealth): the newest value wins
        self.agent_age = Gauge(
            "predictor_agent_heartbeat_age_seconds", "Seconds since the pod's model agent last wrote its heartbeat.",
            multiprocess_mode="mostrecent", registry=r,
        )  # fmt: skip
        self.agent_up = Gauge(
            "predictor_agent_up", "1 while the pod's model agent's heartbeat is fresh (AGENT_STALE_AFTER).",
            multiprocess_mode="mostrecent", registry=r,
        )  # fmt: skip
        self.workers_behind = Gauge(
            "predictor_workers_behind", "Serving processes of the pod not serving the version the agent accepted.",
            multiprocess_mode="mostrecent", registry=r,
        )  # fmt: skip
        self._request_children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._species_children = [self.predictions.labels(species) for species in CLASSES]

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        children = self._request_children.get((route, status))
        if children is None:
            labels = (route, str(status))
            children = self._request_children[(route, status)] = (
                self.requests.labels(*labels), self.latency.labels(*labels),
            )  # fmt: skip
        children[0].inc()
        children[1].observe(seconds)

    def count_predictions(self, class_ids: list[int]) -> None:
        if len(class_ids) == 1:
            self._species_children[class_ids[0]].inc()
            return
        for class_id, count in Tally(class_ids).items():
            self._species_children[class_id].inc(count)

    def set_serving(self, old: str | None, new: str) -> None:
        if old is not None and old != new:
            self.serving.labels(old).set(0)
        self.serving.labels(new).set(1)

    def render(self) -> bytes:
        """The exposition text: every live and dead worker's samples in multiprocess mode, else this app's."""
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        aggregate = CollectorRegistry()
        multiprocess.MultiProcessCollector(aggregate)
        return generate_latest(aggregate)


def clear_folder() -> None:
    """Remove the files of gunicorn's processes (bare pids) from PROMETHEUS_MULTIPROC_DIR (gunicorn's master, at
    start): a dead worker's stale files would count as live. The agent's and the gRPC server's files stay: they may
    be alive in their own containers, and each forgets its own dead predecessors (forget_others)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            if file_identity(stale).isdigit():
                stale.unlink(missing_ok=True)


def forget_others(prefix: str, mine: str) -> list[str]:
    """Mark dead every identity starting with `prefix` but `mine` (the one process of a container, at its start:
    files under the prefix are its dead predecessors'); the identities forgotten."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return []
    others = {file_identity(p) for p in Path(directory).glob(f"*_{prefix}*.db")} - {mine}
    for identity in sorted(others):
        forget_process(identity)
    return sorted(others)


def forget_process(pid: int | str) -> None:
    """Drop a dead process's live gauges from the pod's metrics (gunicorn's child_exit, the agent's supervisor)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
