"""Pod-wide readiness: a pod is Ready only when every one of its serving processes serves a model.

Each gunicorn worker holds its own model, and a probe reaches whichever worker accepts it; readiness of that
worker alone would let a pod take traffic while another of its workers still answers 503. So every gunicorn worker
writes the version it serves to ``HANDOVER_DIR/workers/<pid>`` on every swap (``enable``), gunicorn's
``child_exit`` hook deletes a dead worker's file, and the probe counts live pids with a file and compares that with
the configured worker count. Without gunicorn (``app.test_client()``) nothing is enabled and readiness stays per
process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from core.store import LoadedModel
from predictor import extensions
from predictor.handover import WORKERS, read_regular, write_atomic

EXTENSION = "pod_readiness"
WORKER_STATE_MAX_BYTES = 256
"""A worker's state file holds one version name."""


@dataclass(frozen=True)
class PodReadiness:
    """The pod's worker-state directory and how many workers gunicorn runs."""

    directory: Path
    workers: int

    def ready_workers(self) -> int:
        return serving_workers(self.directory)


def states(handover_dir: Path) -> Path:
    return handover_dir / WORKERS


def enable(app: Flask, handover_dir: Path, workers: int) -> None:
    """Make this worker's readiness probe pod-wide and record every swap of its registry (called in each gunicorn
    worker only: other serving processes, such as the gRPC server, have their own probes)."""
    app.extensions[EXTENSION] = PodReadiness(states(handover_dir), workers)
    extensions.registry(app).on_swap.append(lambda loaded, *_: record(handover_dir, loaded))


def record(handover_dir: Path, loaded: LoadedModel) -> None:
    """This process serves `loaded` from now on (a registry swap listener)."""
    write_atomic(states(handover_dir) / str(os.getpid()), loaded.version.encode())


def forget(handover_dir: Path, pid: int) -> None:
    """A process exited: it serves nothing any more (gunicorn's child_exit)."""
    (states(handover_dir) / str(pid)).unlink(missing_ok=True)


def serving_workers(directory: Path) -> int:
    """How many live processes have written a served version to `directory`."""
    return len(worker_versions(directory))


def worker_versions(directory: Path) -> dict[int, str]:
    """The version each live process that serves one wrote to `directory`, by pid."""
    versions = {}
    for path in directory.glob("[0-9]*"):
        if path.name.isdigit() and _alive(int(path.name)):
            version = _serves(path)
            if version:
                versions[int(path.name)] = version
    return versions


def _serves(path: Path) -> str:
    try:
        return read_regular(path, WORKER_STATE_MAX_BYTES).strip().decode(errors="replace")
    except OSError:  # forgotten meanwhile, or not a regular file (which no worker writes)
        return ""


def _alive(pid: int) -> bool:
    """True if `pid` exists (signal 0 only checks): a worker killed before child_exit ran must not count."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
