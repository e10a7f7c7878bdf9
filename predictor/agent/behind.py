"""Whether the pod serves an older model than the newest one in models/ it would accept: one gauge, set by the agent.

``predictor_agent_behind_bucket`` is 1 while the newest artifact of the agent's last listing of models/ that its
registry would still swap to is newer than the version the agent serves (the version it hands the pod's serving
processes), and the pod is not pinned; 0 otherwise. "Would still swap to" is the registry's own rule
(Registry.acceptable_newer): an artifact the agent refused (a bad or missing signature, a hash mismatch, any
verification failure) or found missing never counts, so a rejected newest artifact leaves the pod on the newest one
it accepted and the gauge at 0. One whose load failed for another reason (the bucket unreachable, the handover disk
full) still counts: that pod is stuck. A pinned pod (PINNED_MODEL_VERSION or an admin pin, decided in
predictor.agent.aspired) serves what it was told to and is never behind.

A 0/1 gauge rather than the two versions' times: whether a newer artifact counts depends on what this agent refused
and on its pin, facts only the agent holds, so the agent decides and the alert (IrisPodBehindBucket) only waits. It
reads the last listing (the reconcile job's, every RECONCILE_INTERVAL and after each resubscription), which loads the
newest acceptable artifact at once: the gauge is 1 for the seconds of a load, or for as long as a newer artifact the
agent would accept cannot be served. The serving processes' own lag behind the agent is predictor_workers_behind.
Set on every heartbeat, ``mostrecent`` across processes as the drift gauges (predictor.agent.drift).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from core.store import ArtifactRef
from predictor.lifecycle.registry import Registry

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class BucketLag:
    """The agent's registry against its last listing of models/, exported into `metrics`."""

    def __init__(
        self, metrics: CollectorRegistry, registry: Registry, listed: Callable[[], Sequence[ArtifactRef]]
    ) -> None:
        from prometheus_client import Gauge

        self.registry, self.listed = registry, listed
        self.gauge = Gauge(
            "predictor_agent_behind_bucket",
            "1 while models/ holds a newer artifact than the pod serves that its model agent would accept (not "
            "refused by verification) and the pod is not pinned.",
            multiprocess_mode="mostrecent", registry=metrics,
        )  # fmt: skip
        self.gauge.set(0)

    def behind(self) -> bool:
        return self.registry.pinned is None and bool(self.registry.acceptable_newer(self.listed()))

    def update(self) -> bool:
        """Set the gauge (a heartbeat of the agent); whether the pod is behind."""
        behind = self.behind()
        self.gauge.set(1 if behind else 0)
        return behind
