"""The model agent as a child of gunicorn's master (``python -m predictor`` with START_AGENT, the local stack).

In Kubernetes a sidecar container runs the agent and the kubelet restarts it. Locally a supervising thread of the
master restarts an agent that exited, with a backoff from AGENT_RESTART_BACKOFF[0] doubling to [1] (reset once an
agent ran AGENT_STABLE_S), logging each exit as an error; the thread only waits and spawns (no locks held across the
workers' forks besides logging's, which Python reinitialises). The agent runs in a session of its own: a signal to
gunicorn's process group (Ctrl-C, a supervisor's SIGTERM) reaches it only through the master's on_exit, after the
workers stopped and closed their prediction logs, so its last shipping pass finds their files (as the native
sidecar stops after the serving container in a pod). An agent whose master is gone exits by itself.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

from predictor import metrics

AGENT_STOP_TIMEOUT = 20.0
"""Seconds the master waits for the agent to delete its subscription, ship the last prediction log files and exit
before killing it."""
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
        self.process = subprocess.Popen(
            [sys.executable, "-m", "predictor.agent"], env=os.environ.copy(), start_new_session=True
        )
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
            metrics.forget_process(metrics.agent_identity(process.pid))
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
