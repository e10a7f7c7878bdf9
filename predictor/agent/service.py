"""The model agent: subscriber, reconcile job and startup load around one registry that hands over what it swaps.

The registry is the serving processes' own (same rules: dedupe, never downgrade, pin, refuse what failed
verification), on the bucket; its store stages every verified download in HANDOVER_DIR and its swap hook points the
pod at it. Admin pins, unpins and reloads are decided here, once per pod (predictor.agent.aspired). Notifications
arrive on one subscription per pod (predictor.agent.subscription); the reconcile job lists models/ every
RECONCILE_INTERVAL, at once after every resubscription, and is the only trigger with MODEL_EVENTS_ENABLED=false or
while Pub/Sub is down.

The agent watches itself (core.observe): every listing's artifacts are checked against the notifications that
arrived, and an artifact whose notification is overdue (MISSED_EVENT_AFTER) is a missed event that recycles the
stream. A heartbeat thread writes ``agent.json`` into the handover every HEARTBEAT_S seconds (the workers show its
age and whether they lag it) and answers the agent's own liveness probe (AGENT_HEALTH_PORT).

The agent also runs the pod's prediction log shipper (predictor.predlog.shipper: the serving processes' spool files
to the bucket; started with the agent, stopped after the subscription, its status in ``agent.json``) and feeds each
shipped file to the pod's drift window (predictor.agent.drift), whose reference follows every model it accepts, and a
second shipper of the same class for the feedback spool (FEEDBACK_LOG_DIR to FEEDBACK_LOG_PREFIX, never dropping). It
reads the bucket's live accuracy document on a timer (predictor.agent.accuracy). The drift window and the accuracy
reader hand their figures over to the serving processes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from core import gcs
from core.observe import Heartbeat, StreamHealth
from core.store import ArtifactRef, LoadedModel, ModelStore
from predictor.agent import reconcile
from predictor.agent.accuracy import LiveAccuracy
from predictor.agent.aspired import AspiredVersions
from predictor.agent.behind import BucketLag
from predictor.agent.drift import PodDrift
from predictor.agent.subscription import ModelEvents
from predictor.lifecycle import handover
from predictor.lifecycle.handover import HandoverWriter
from predictor.lifecycle.registry import Registry
from predictor.metrics import Metrics
from predictor.predlog.metrics import FeedbackCounters, PredictionLogCounters
from predictor.predlog.shipper import Shipper
from predictor.settings import PredictorSettings

log = logging.getLogger(__name__)

PREFIX = "predictor_agent"
"""Prefix of the agent's stream-health metrics (core.observe)."""

STOP_BUDGET_MAX = 10.0
"""Most seconds stop() spends (it also keeps to half of GRACEFUL_TIMEOUT)."""
HEARTBEAT_S = 2.0
"""Most seconds between the agent's heartbeats (agent.json, missed-event check, metrics refresh); at least four
fall within AGENT_STALE_AFTER."""


class StagingBucket:
    """The bucket, with every verified download staged in the handover before the registry swaps to it."""

    def __init__(self, store: ModelStore, writer: HandoverWriter, bucket: str, health: StreamHealth) -> None:
        self.store, self.writer, self.bucket, self.health = store, writer, bucket, health
        self.newest: str | None = None
        """The newest version the last listing saw (valid or not)."""
        self.listed: list[ArtifactRef] = []
        """The last listing's artifacts, oldest first."""

    def list_versions(self) -> list[ArtifactRef]:
        """The bucket's artifacts; each version newer than the last listing's newest is expected to have been
        announced by a notification (for any generation of its name). Only new versions: an artifact is never
        overwritten, so another generation of a known name is a metadata rewrite (fake-gcs-server gives the retiring
        customTime patch a generation of its own, unannounced) or an old artifact uploaded again, which anti-rollback
        ignores anyway."""
        refs = self.listed = self.store.list_versions()
        known, self.newest = self.newest, refs[-1].version if refs else None
        new = [ref for ref in refs if known is None or ref.version > known]
        self.health.found(((self.bucket, ref.name, ref.generation), ref.created) for ref in new)
        return refs

    def ref(self, name: str, generation: int | None = None) -> ArtifactRef:
        return self.store.ref(name, generation)

    def load(self, ref: ArtifactRef) -> LoadedModel:
        data = self.store.download(ref)
        loaded = self.store.load_bytes(ref, data)
        self.writer.stage(ref, data)
        return loaded


class AgentMetrics(Metrics):
    """The agent's samples join the workers' (swaps, rejections, swap latency) but it serves nothing itself, so it
    never sets predictor_model_serving, which counts serving workers."""

    def set_serving(self, old: str | None, new: str) -> None:
        return None


class Agent:
    """One pod's model agent: build, start, stop."""

    def __init__(
        self,
        settings: PredictorSettings,
        registry: Registry,
        health: StreamHealth,
        directory: Path | None = None,
        aspired: AspiredVersions | None = None,
        shipper: Shipper | None = None,
        drift: PodDrift | None = None,
        feedback_shipper: Shipper | None = None,
        accuracy: LiveAccuracy | None = None,
    ) -> None:
        self.settings, self.registry, self.health, self.directory = settings, registry, health, directory
        self.aspired = aspired
        """Decides the pod's admin requests (pin, unpin, reload); None without a handover."""
        self.shipper = shipper
        """Ships the pod's prediction log; None with PREDICTION_LOG_ENABLED=false."""
        self.drift = drift
        self.feedback_shipper = feedback_shipper
        """Ships the pod's accepted feedback (predictor.predlog.feedback); None with the log off."""
        self.accuracy = accuracy
        self.heartbeat = Heartbeat(settings.agent_stale_after)
        self.stopping = threading.Event()
        self.scheduler: BackgroundScheduler = reconcile.scheduler()
        self.events: ModelEvents | None = None
        self.loader = threading.Thread(
            target=reconcile.initial_load, args=(registry, settings, self.stopping), name="model-startup-load",
            daemon=True,
        )  # fmt: skip
        self.ticker = threading.Thread(target=self._tick_forever, name="model-agent-heartbeat", daemon=True)
        self.lag = BucketLag(registry.metrics.registry, registry, lambda: getattr(registry.store, "listed", []))
        """Whether the pod serves an older model than models/ offers (predictor_agent_behind_bucket)."""

    def start(self) -> None:
        """Subscribe (before the first listing, so nothing published after it is missed), schedule, load."""
        if self.settings.model_events_enabled:
            self.events = self._subscriber()
        interval = reconcile.interval(self.settings, events=self.events is not None)
        reconcile.schedule(self.scheduler, self.registry, interval)
        self.scheduler.start()
        self.loader.start()
        self.ticker.start()
        if self.aspired is not None:
            self.aspired.start()
        for shipper in (self.shipper, self.feedback_shipper):
            if shipper is not None:
                shipper.start()
        if self.accuracy is not None:
            self.accuracy.start()
        log.info("model agent started", extra={"events": self.events is not None, "interval_s": interval})

    def _subscriber(self) -> ModelEvents | None:
        """None if the subscriber cannot even be built (no credentials, say): reconcile on the short interval."""
        try:
            events = ModelEvents(
                self.registry, self.settings, on_reconnect=lambda: reconcile.run_now(self.scheduler, self.registry),
                health=self.health, on_rate_limited=lambda: reconcile.run_soon(
                    self.scheduler, self.registry, reconcile.RATE_LIMITED_DELAY_S),
            )  # fmt: skip
            self.health.on_missed = events.recycle
        except Exception:
            log.exception("model events unavailable; falling back to RECONCILE_INTERVAL_WITHOUT_EVENTS polling")
            return None
        events.start()
        return events

    def stop(self) -> None:
        """Stop the scheduler, cancel the stream and delete the subscription, within the graceful timeout."""
        started = time.monotonic()
        self.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.events is not None:
            self.events.stop(timeout=min(STOP_BUDGET_MAX, self.settings.graceful_timeout / 2))
        if self.loader.ident is not None:
            self.loader.join(timeout=0.5)
        if self.aspired is not None:
            self.aspired.stop()
        if self.accuracy is not None:
            self.accuracy.stop()
        for shipper in (self.shipper, self.feedback_shipper):  # last: ships what the serving processes closed
            if shipper is not None:
                shipper.stop()
        log.info("model agent stopped", extra={"duration_s": round(time.monotonic() - started, 3)})

    def status(self) -> dict[str, Any]:
        return {
            "version": self.registry.version,
            "loading": self.loader.is_alive(),
            "scheduler_running": bool(self.scheduler.running),
            "events": self.events.status() if self.events else None,
            "prediction_log": self.shipper.status() if self.shipper else None,
            "feedback_log": self.feedback_shipper.status() if self.feedback_shipper else None,
        }

    def probe(self) -> tuple[bool, dict[str, Any]]:
        """Liveness: the heartbeat is fresh, the reconcile scheduler runs and so does the subscriber's supervisor."""
        problems = []
        if not self.heartbeat.fresh():
            problems.append(f"heartbeat {self.heartbeat.age():.1f} s old")
        if not self.scheduler.running:
            problems.append("reconcile scheduler stopped")
        if self.events is not None and not self.events.alive():
            problems.append("subscriber stopped")
        return not problems, {"heartbeat_age_s": round(self.heartbeat.age(), 3), "problems": problems}

    def tick(self) -> None:
        """One heartbeat: check for missed events, refresh the gauges, write agent.json."""
        self.health.check()
        self.heartbeat.beat()
        self.lag.update()
        if self.directory is None:
            return
        store = self.registry.store
        state = {
            "at": time.time(),
            "pid": os.getpid(),
            "version": self.registry.version,
            "bucket_newest": getattr(store, "newest", None),
            "connected": self.events.status()["connected"] if self.events else None,
            "events": self.events is not None,
            "prediction_log": self.shipper.status() if self.shipper else None,
            "feedback_log": self.feedback_shipper.status() if self.feedback_shipper else None,
            **self.health.status(),
        }
        handover.write_agent(self.directory, state)

    def _tick_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception:  # the next beat tries again; a stale heartbeat shows if it never succeeds
                log.exception("model agent heartbeat failed")
            self.stopping.wait(min(HEARTBEAT_S, self.settings.agent_stale_after / 4))


def build(settings: PredictorSettings, directory: Path, store: ModelStore | None = None) -> Agent:
    """An agent on the bucket (`store`, else one from the settings) handing over into `directory`."""
    if store is None:
        bucket = gcs.client(settings).bucket(settings.gcs_bucket)
        store = ModelStore(bucket, settings.keyring(), gcs.retry(settings), settings.artifact_limits())
    writer = HandoverWriter(directory)
    metrics = AgentMetrics()
    health = StreamHealth(PREFIX, settings.missed_event_after, metrics.registry, by_name=True)  # never overwritten
    drift = PodDrift(settings, metrics.registry, directory)
    accuracy = LiveAccuracy(settings, store.bucket, metrics.registry, directory, gcs.retry(settings), store.keyring)
    registry = Registry(
        StagingBucket(store, writer, settings.gcs_bucket, health), settings, metrics,
        on_swap=[writer.point_to, drift.use, accuracy.use],
        on_record=[lambda history: handover.write_history(directory, history)],
    )  # fmt: skip
    writer.pinned = lambda: registry.pinned
    aspired = AspiredVersions(registry, writer, settings.handover_poll_interval)
    shipper = feedback_shipper = None
    if settings.prediction_log_enabled:
        shipper = Shipper(
            settings, store.bucket, settings.spool_dir(directory), settings.pod_name, gcs.retry(settings),
            PredictionLogCounters(metrics.registry), on_shipped=[drift.observe_lines],
        )  # fmt: skip
        feedback_shipper = Shipper(
            settings, store.bucket, settings.feedback_dir(directory), settings.pod_name, gcs.retry(settings),
            FeedbackCounters(metrics.registry), prefix=settings.feedback_log_prefix, drops=False,
        )  # fmt: skip
    return Agent(settings, registry, health, directory, aspired, shipper, drift, feedback_shipper, accuracy)
