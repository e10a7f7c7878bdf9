"""Pod-wide readiness under gunicorn: a pod is Ready only when every one of its workers serves a model.

Each gunicorn worker holds its own model, and a probe reaches whichever worker accepts it; readiness of that
worker alone would let a pod take traffic while another of its workers still answers 503. The serving state of
every worker is already shared: the ``predictor_model_serving`` gauge (multiprocess mode ``livesum``) lives in one
``gauge_livesum_<pid>.db`` file per worker in PROMETHEUS_MULTIPROC_DIR, set on every swap, and gunicorn's
``child_exit`` hook deletes a dead worker's file. So the probe counts live pids whose gauge is 1 for some version
and compares that with the configured worker count. Without gunicorn (``app.test_client()``) nothing is enabled
and readiness stays per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from prometheus_client.multiprocess import MultiProcessCollector

EXTENSION = "pod_readiness"
GAUGE = "predictor_model_serving"


@dataclass(frozen=True)
class PodReadiness:
    """The pod's metrics directory and how many workers gunicorn runs."""

    directory: Path
    workers: int

    def ready_workers(self) -> int:
        return serving_workers(self.directory)


def enable(app: Flask, directory: str | None, workers: int) -> None:
    """Make this worker's readiness probe pod-wide (called in each gunicorn worker); no-op without a directory."""
    if directory:
        app.extensions[EXTENSION] = PodReadiness(Path(directory), workers)


def serving_workers(directory: Path) -> int:
    """How many live processes have a ``predictor_model_serving`` gauge of 1 for some version in `directory`."""
    count = 0
    for path in directory.glob("gauge_livesum_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and _alive(int(pid)) and _serves(path):
            count += 1
    return count


def _serves(path: Path) -> bool:
    metrics = MultiProcessCollector.merge([str(path)], accumulate=False)  # a vanished file reads as empty
    return any(sample.value > 0 for metric in metrics if metric.name == GAUGE for sample in metric.samples)


def _alive(pid: int) -> bool:
    """True if `pid` exists (signal 0 only checks): a worker killed before child_exit ran must not count."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
