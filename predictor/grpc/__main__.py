"""``python -m predictor.grpc``: the gRPC server's composition root (see ``predictor.grpc.server``).

It builds what a gunicorn worker builds, without Flask: the bucket (on first use), a registry following the pod's
handover, its own prediction log (spooled beside the handover, closed on shutdown) and the data plane over them.
Without HANDOVER_DIR (a server started on its own, with no pod agent) it runs its own agent handing over into a
private temporary directory.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING


def pod_metrics_folder() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR when this container mounts it writable (the pod's folder, which the gunicorn workers'
    /metrics aggregates), else None."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return directory if directory and os.path.isdir(directory) and os.access(directory, os.W_OK) else None


# Before prometheus_client is imported (it reads the variable once): without the pod's folder this process keeps its
# metrics to itself.
if pod_metrics_folder() is None:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def join_pod_metrics() -> list[str]:
    """Before the first metric exists: write metric files into the pod's folder as ``grpc-<pid>``, and forget dead
    predecessors' live gauges (the identities forgotten)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return []
    from predictor import metrics

    metrics.name_files_as(metrics.grpc_identity)
    return metrics.forget_others(metrics.GRPC_FILE_PREFIX, metrics.grpc_identity(os.getpid()))


if TYPE_CHECKING:
    from core.store import ModelStore
    from predictor.agent.service import Agent
    from predictor.dataplane import DataPlane
    from predictor.lifecycle.follower import Follower
    from predictor.settings import PredictorSettings


@dataclass
class Process:
    """What the gRPC server runs: its data plane, the follower of its registry and, without a pod agent, its own."""

    dataplane: DataPlane
    follower: Follower
    own_agent: Agent | None


def compose(settings: PredictorSettings, bucket: ModelStore | None = None) -> Process:
    """Wire the process on `bucket` (else the settings' bucket, built on first use); nothing started yet."""
    from predictor.dataplane import DataPlane
    from predictor.lifecycle.bucket import DeferredModelStore
    from predictor.lifecycle.follower import Follower
    from predictor.metrics import Metrics
    from predictor.predlog.log import PredictionLog

    metrics, bucket = Metrics(), bucket or DeferredModelStore(settings)
    own_agent = None
    if settings.handover_dir:
        directory = Path(settings.handover_dir)
    else:
        from predictor.agent import service  # Pub/Sub only in a process that runs an agent

        directory = Path(tempfile.mkdtemp(prefix="predictor-handover-"))
        own_agent = service.build(settings, directory, bucket)
    follower = Follower.build(settings, directory, bucket, metrics)
    follower.own_agent = own_agent is not None
    log = PredictionLog.from_settings(settings, directory, metrics.registry)
    return Process(DataPlane(follower.registry, settings, metrics, log), follower, own_agent)


def main() -> int:
    from core import logs
    from core.settings import load
    from predictor.settings import PredictorSettings

    settings = load(PredictorSettings)
    logs.setup(settings.log_level)
    join_pod_metrics()
    from predictor.grpc.server import serve  # scikit-learn and prometheus_client: after the environment is settled

    process = compose(settings)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    if process.own_agent is not None:
        process.own_agent.start()
    try:
        serve(process.dataplane, process.follower, settings, stopping)
    finally:
        process.dataplane.log.close()
        if process.own_agent is not None:
            process.own_agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
