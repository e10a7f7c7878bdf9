"""gunicorn configuration of the predictor, applied by ``python -m predictor`` (predictor.__main__): settings, hooks.

The hooks only call the module that does each job: the model agent child (predictor.agent.supervisor, with
START_AGENT; in Kubernetes a sidecar container runs it), the handover folder (predictor.lifecycle.handover:
HANDOVER_DIR, created if unset, and its ``workers/`` states cleared at start and per exited worker), the metrics
folder (predictor.metrics: emptied at start, each exited process marked dead) and each worker's handover follower
(predictor.lifecycle.follower: started after the app is built, stopped on exit) and prediction log
(predictor.predlog: closed on exit, so nothing it accepted is lost).

Workers are forked before ``create_app`` runs (no preload), so no thread ever crosses a fork; the master only imports
the app's modules (scikit-learn takes seconds to import), which every worker then inherits.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from core import logs
from core.settings import load
from predictor import metrics
from predictor.agent.supervisor import AgentSupervisor
from predictor.lifecycle import handover
from predictor.settings import PredictorSettings

_settings = load(PredictorSettings)

bind = [f"{_settings.bind_host}:{_settings.port}"]
if _settings.admin_port is not None:  # /admin/* and /metrics answer only here (predictor.http.admin_port)
    bind.append(f"{_settings.admin_bind_host}:{_settings.admin_port}")
workers = _settings.web_concurrency
worker_class = "predictor.workers.ThreadWorker" if _settings.worker_class == "gthread" else _settings.worker_class
threads = _settings.worker_threads
reuse_port = _settings.reuse_port
keepalive = 5
graceful_timeout = _settings.graceful_timeout
timeout = _settings.worker_timeout
preload_app = False
control_socket_disable = True  # no gunicornc socket under $HOME (read-only in the container, shared between local runs)
accesslog = None


def post_fork(server: Any, worker: Any) -> None:
    """Worker, right after the fork: its own socket in WORKER_SOCKETS_DIR, which nginx balances over."""
    if _settings.worker_sockets_dir:
        from predictor import workers as worker_sockets

        worker_sockets.listen(worker, _settings.worker_sockets_dir, _settings.web_concurrency)


_agent: list[AgentSupervisor] = []


def handover_dir() -> Path:
    """HANDOVER_DIR, created if unset (a private temporary directory that the forked workers inherit)."""
    if not os.environ.get("HANDOVER_DIR"):
        os.environ["HANDOVER_DIR"] = _settings.handover_dir or tempfile.mkdtemp(prefix="predictor-handover-")
    return Path(os.environ["HANDOVER_DIR"])


def on_starting(server: Any) -> None:
    """Master, once: JSON logs, empty state folders, the model agent, and the app's imports for every worker."""
    logs.setup(_settings.log_level)
    metrics.clear_folder()
    handover.clear_worker_states(handover_dir())
    if _settings.start_agent:
        supervisor = AgentSupervisor()
        supervisor.start()
        _agent.append(supervisor)
    import predictor.http.app  # noqa: F401  (imports only: no app, no threads, no sockets)


def post_worker_init(worker: Any) -> None:
    """Worker, after the app is built: follow the agent's handover."""
    logs.setup(_settings.log_level)
    from predictor.http import extensions

    follower = extensions.follower(worker.wsgi)
    if follower is not None:
        follower.start()


def worker_exit(server: Any, worker: Any) -> None:
    """Worker, on its way out: stop following the handover, then write what its prediction log and its feedback
    spool hold to their folders and make the last files ready (the agent, stopped after the workers, ships them)."""
    from predictor.http import extensions

    app = getattr(worker, "wsgi", None)
    if app is None:
        return
    follower = extensions.follower(app)
    if follower is not None:
        follower.stop()
    extensions.dataplane(app).log.close()
    extensions.dataplane(app).feedback_log.close()


def child_exit(server: Any, worker: Any) -> None:
    """Master, after a worker exited: drop its live gauges from the metrics and its state from pod readiness."""
    metrics.forget_process(worker.pid)
    handover.forget_worker(handover_dir(), worker.pid)


def on_exit(server: Any) -> None:
    """Master, after every worker exited: stop the agent (it deletes the pod's subscription)."""
    for supervisor in _agent:
        supervisor.stop()
