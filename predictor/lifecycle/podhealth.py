"""How a serving process sees its pod's model agent: alive or not, and whether the pod's workers lag it.

The agent writes its heartbeat (``agent.json``, predictor.lifecycle.handover) every few seconds; a heartbeat older
than AGENT_STALE_AFTER means the agent is down (killed, hung, crash-looping) and the pod cannot learn new models.
Every worker writes the version it serves (``workers/<pid>``); a live worker serving another version than the one the
agent accepted lags the bucket. Both show in /v1/model (``agent``, ``behind``, ``degraded``) and in /metrics
(``predictor_agent_up``, ``predictor_agent_heartbeat_age_seconds``, ``predictor_workers_behind``). Neither fails
readiness: the pod still serves a verified model, so it stays Ready, visibly degraded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from predictor.lifecycle import handover
from predictor.lifecycle.registry import Registry
from predictor.metrics import Metrics


def agent_age(directory: Path) -> tuple[dict[str, Any] | None, float | None]:
    """The agent's last heartbeat and its age in seconds (None, None if it never wrote one)."""
    state = handover.read_agent(directory)
    return state, None if state is None else max(0.0, time.time() - float(state.get("at") or 0))


def view(directory: Path, registry: Registry, metrics: Metrics) -> dict[str, Any]:
    """The pod's agent and lag as this process sees them (and the pod gauges set)."""
    state, age = agent_age(directory)
    alive = age is not None and age <= registry.settings.agent_stale_after
    accepted = state.get("version") if state else None
    versions = handover.worker_versions(directory)
    lagging = sorted(pid for pid, version in versions.items() if accepted and version != accepted)
    behind = bool(accepted) and (registry.version != accepted or bool(lagging))
    degraded = []
    if not alive:
        degraded.append(
            "model agent down: no heartbeat yet" if age is None else f"model agent down: heartbeat {age:.0f} s old"
        )
    elif state and state.get("events") and not state.get("connected"):
        degraded.append("model agent's subscription is not connected (the reconcile poll still runs)")
    if behind:
        degraded.append(f"{len(lagging) or 1} serving process(es) not serving the accepted version {accepted}")
    metrics.agent_up.set(1 if alive else 0)
    metrics.agent_age.set(round(age, 3) if age is not None else -1)
    metrics.workers_behind.set(len(lagging) if lagging else int(behind))
    agent = dict(state or {})
    agent.update({"alive": alive, "heartbeat_age_s": None if age is None else round(age, 3)})
    agent.pop("at", None)
    return {"agent": agent, "behind": behind, "degraded": degraded}
