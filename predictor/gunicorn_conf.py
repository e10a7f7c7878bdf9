"""gunicorn configuration of the predictor: ``gunicorn -c predictor/gunicorn_conf.py 'predictor.app:create_app()'``.

``python -m predictor`` applies the same settings programmatically.

Model events fan out to every worker with no IPC: each gunicorn worker process runs its own Pub/Sub subscriber on its
own subscription (name = prefix, pod, pid, random suffix; expiration TTL as a safety net for crashed pods). A Pub/Sub
message is delivered once per subscription, so every worker of every pod hears every OBJECT_FINALIZE and swaps its
own in-memory model; nothing has to be relayed between workers, a stuck worker cannot hold back the others, and a
worker restarted by gunicorn simply subscribes again and catches up with a listing (reconcile). The cost is one
subscription per worker, which is cheap at this scale. Workers are forked before ``create_app`` runs (no preload),
so no gRPC channel or thread ever crosses a fork; the master only imports the app's modules (scikit-learn takes
seconds to import), which every worker then inherits.

Prometheus samples of all workers are shared through files in PROMETHEUS_MULTIPROC_DIR: the master empties it at
start (stale files of dead PIDs would otherwise count as live) and marks each exited worker dead. The same files
make readiness pod-wide (predictor.readiness): a probe is 200 only when every worker serves a model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core import logs
from core.settings import load
from predictor.settings import PredictorSettings

_settings = load(PredictorSettings)

bind = f"{_settings.bind_host}:{_settings.port}"
workers = _settings.web_concurrency
worker_class = "gthread"
threads = _settings.worker_threads
keepalive = 5
graceful_timeout = _settings.graceful_timeout
timeout = _settings.worker_timeout
preload_app = False
control_socket_disable = True  # no gunicornc socket under $HOME (read-only in the container, shared between local runs)
accesslog = None


def on_starting(server: Any) -> None:
    """Master, once: JSON logs, an empty metrics directory, and the app's imports shared by every forked worker."""
    logs.setup(_settings.log_level)
    import predictor.app  # noqa: F401  (imports only: no app, no threads, no sockets)

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink(missing_ok=True)


def post_worker_init(worker: Any) -> None:
    """Worker, after the app is built: pod-wide readiness, then start loading models and listening for events."""
    logs.setup(_settings.log_level)
    from predictor import background, readiness

    readiness.enable(worker.wsgi, os.environ.get("PROMETHEUS_MULTIPROC_DIR"), worker.cfg.workers)
    background.start(worker.wsgi)


def worker_exit(server: Any, worker: Any) -> None:
    """Worker, on its way out: stop the subscriber (deleting its subscription) and the scheduler."""
    app = getattr(worker, "wsgi", None)
    if app is not None:
        from predictor import background

        background.stop(app)


def child_exit(server: Any, worker: Any) -> None:
    """Master, after a worker exited: drop its live gauges from the aggregated metrics and from pod readiness."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
