"""gunicorn configuration of the predictor: ``gunicorn -c predictor/gunicorn_conf.py 'predictor.app:create_app()'``.

``python -m predictor`` applies the same settings programmatically.

Serving processes only serve. One model agent per pod (predictor.agent) subscribes to model events, reconciles,
downloads and verifies; it hands each new artifact over through HANDOVER_DIR on local disk, and every worker swaps
from there (predictor.background). With START_AGENT (the default, and the local stack) the master starts the agent
as a child before forking the workers and stops it after they exited; in Kubernetes a sidecar container runs it.
Locally a supervising thread of the master (``AgentSupervisor``) restarts an agent that exited, with a backoff from
AGENT_RESTART_BACKOFF[0] doubling to [1] (reset once an agent ran AGENT_STABLE_S), logging each exit as an error; the
thread only waits and spawns (no locks held across the workers' forks besides logging's, which Python reinitialises).
Workers are forked before ``create_app`` runs (no preload), so no thread ever crosses a fork; the master only imports
the app's modules (scikit-learn takes seconds to import), which every worker then inherits.

Prometheus samples of all workers are shared through files in PROMETHEUS_MULTIPROC_DIR: the master empties it at
start (stale files of dead PIDs would otherwise count as live) and marks each exited worker dead. Each worker writes
the version it serves to HANDOVER_DIR/workers/<pid> for pod-wide readiness (predictor.readiness); the master clears
them at start and drops an exited worker's.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from core import logs
from core.settings import load
from predictor.settings import PredictorSettings

_settings = load(PredictorSettings)

bind = [f"{_settings.bind_host}:{_settings.port}"]
if _settings.admin_port is not None:  # /admin/* and /metrics answer only here (predictor.admin_port)
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


AGENT_STOP_TIMEOUT = 15.0
"""Seconds the master waits for the agent to delete its subscription and exit before killing it."""
AGENT_RESTART_BACKOFF = (1.0, 30.0)
"""First and largest delay before restarting an agent that exited."""
AGENT_STABLE_S = 60.0
"""An agent that ran this long before exiting is restarted after the first delay again."""
AGENT_POLL_S = 0.5

log = logging.getLogger("predictor.agent.supervisor")


class AgentSupervisor:
    """The master's model agent child: started, restarted with backoff when it exits, stopped at the end."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="model-agent-supervisor", daemon=True)

    def start(self) -> None:
        self._spawn()
        self.thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.process = subprocess.Popen([sys.executable, "-m", "predictor.agent"], env=os.environ.copy())
        self.started_at = time.monotonic()
        return self.process

    def _watch(self) -> None:
        delay = AGENT_RESTART_BACKOFF[0]
        while not self.stopping.wait(AGENT_POLL_S):
            process = self.process
            if process is None or process.poll() is None:
                continue
            ran = time.monotonic() - self.started_at
            delay = AGENT_RESTART_BACKOFF[0] if ran >= AGENT_STABLE_S else delay
            # the status is 0 when gunicorn's own reaping (waitpid(-1)) collected it first
            log.error(
                "model agent (pid %d) exited after %.1f s; restarting it in %.1f s", process.pid, ran, delay,
                extra={"pid": process.pid, "status": process.returncode, "restarts": self.restarts},
            )  # fmt: skip
            from predictor.metrics import agent_identity

            _forget_process(agent_identity(process.pid))
            if self.stopping.wait(delay):
                return
            self.restarts += 1
            pid = self._spawn().pid
            log.warning("model agent restarted", extra={"pid": pid, "restarts": self.restarts})
            delay = min(delay * 2, AGENT_RESTART_BACKOFF[1])

    def stop(self) -> None:
        """Stop restarting, then ask the agent to exit (it deletes the pod's subscription); kill it if it hangs."""
        self.stopping.set()
        if self.thread.ident is not None:
            self.thread.join(AGENT_POLL_S * 4)
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(AGENT_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _forget_process(pid: int | str) -> None:
    """Drop a dead process's live gauges from the pod's metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


_agent: list[AgentSupervisor] = []


def handover_dir() -> Path:
    """HANDOVER_DIR, created if unset (a private temporary directory that the forked workers inherit)."""
    if not os.environ.get("HANDOVER_DIR"):
        os.environ["HANDOVER_DIR"] = _settings.handover_dir or tempfile.mkdtemp(prefix="predictor-handover-")
    return Path(os.environ["HANDOVER_DIR"])


def on_starting(server: Any) -> None:
    """Master, once: JSON logs, empty state directories, the model agent, and the app's imports for every worker."""
    logs.setup(_settings.log_level)
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink(missing_ok=True)
    from predictor import readiness

    states = readiness.states(handover_dir())
    states.mkdir(parents=True, exist_ok=True)
    for stale in states.iterdir():
        stale.unlink(missing_ok=True)
    if _settings.start_agent:
        supervisor = AgentSupervisor()
        supervisor.start()
        _agent.append(supervisor)
    import predictor.app  # noqa: F401  (imports only: no app, no threads, no sockets)


def post_worker_init(worker: Any) -> None:
    """Worker, after the app is built: pod-wide readiness, then follow the agent's handover."""
    logs.setup(_settings.log_level)
    from predictor import background, readiness

    readiness.enable(worker.wsgi, handover_dir(), worker.cfg.workers)
    background.start(worker.wsgi)


def worker_exit(server: Any, worker: Any) -> None:
    """Worker, on its way out: stop following the handover."""
    app = getattr(worker, "wsgi", None)
    if app is not None:
        from predictor import background

        background.stop(app)


def child_exit(server: Any, worker: Any) -> None:
    """Master, after a worker exited: drop its live gauges from the metrics and its state from pod readiness."""
    _forget_process(worker.pid)
    from predictor import readiness

    readiness.forget(handover_dir(), worker.pid)


def on_exit(server: Any) -> None:
    """Master, after every worker exited: stop the agent (it deletes the pod's subscription)."""
    for supervisor in _agent:
        supervisor.stop()
