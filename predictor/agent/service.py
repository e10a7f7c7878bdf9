"""The model agent: subscriber, reconcile job and startup load around one registry that hands over what it swaps.

The registry is the serving processes' own (same rules: dedupe, never downgrade, pin, refuse what failed
verification), on the bucket; its store stages every verified download in HANDOVER_DIR and its swap listener points
the pod at it. Notifications arrive on one subscription per pod (predictor.events); the reconcile job lists models/
every RECONCILE_INTERVAL, at once after every resubscription, and is the only trigger with
MODEL_EVENTS_ENABLED=false or while Pub/Sub is down.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from core import gcs
from core.store import ArtifactRef, LoadedModel, ModelStore
from predictor import handover, reconcile
from predictor.events import ModelEvents
from predictor.handover import Publisher
from predictor.metrics import Metrics
from predictor.registry import Registry
from predictor.settings import PredictorSettings

log = logging.getLogger(__name__)

STOP_BUDGET_MAX = 10.0
"""Most seconds stop() spends (it also keeps to half of GRACEFUL_TIMEOUT)."""


class StagingStore:
    """The bucket, with every verified download staged in the handover before the registry swaps to it."""

    def __init__(self, store: ModelStore, publisher: Publisher) -> None:
        self.store, self.publisher = store, publisher

    def list_versions(self) -> list[ArtifactRef]:
        return self.store.list_versions()

    def ref(self, name: str, generation: int | None = None) -> ArtifactRef:
        return self.store.ref(name, generation)

    def load(self, ref: ArtifactRef) -> LoadedModel:
        data = self.store.download(ref)
        loaded = self.store.load_bytes(ref, data)
        self.publisher.stage(ref, data)
        return loaded


class AgentMetrics(Metrics):
    """The agent's samples join the workers' (swaps, rejections, swap latency) but it serves nothing itself, so it
    never sets predictor_model_serving, which counts serving workers."""

    def set_serving(self, old: str | None, new: str) -> None:
        return None


class Agent:
    """One pod's model agent: build, start, stop."""

    def __init__(self, settings: PredictorSettings, registry: Registry) -> None:
        self.settings, self.registry = settings, registry
        self.stopping = threading.Event()
        self.scheduler: BackgroundScheduler = reconcile.scheduler()
        self.events: ModelEvents | None = None
        self.loader = threading.Thread(
            target=reconcile.initial_load, args=(registry, settings, self.stopping), name="model-startup-load",
            daemon=True,
        )  # fmt: skip

    def start(self) -> None:
        """Subscribe (before the first listing, so nothing published after it is missed), schedule, load."""
        if self.settings.model_events_enabled:
            self.events = self._subscriber()
        interval = reconcile.interval(self.settings, events=self.events is not None)
        reconcile.schedule(self.scheduler, self.registry, interval)
        self.scheduler.start()
        self.loader.start()
        log.info("model agent started", extra={"events": self.events is not None, "interval_s": interval})

    def _subscriber(self) -> ModelEvents | None:
        """None if the subscriber cannot even be built (no credentials, say): reconcile on the short interval."""
        try:
            events = ModelEvents(
                self.registry, self.settings, on_reconnect=lambda: reconcile.run_now(self.scheduler, self.registry)
            )
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
        log.info("model agent stopped", extra={"duration_s": round(time.monotonic() - started, 3)})

    def status(self) -> dict[str, Any]:
        return {
            "version": self.registry.version,
            "loading": self.loader.is_alive(),
            "scheduler_running": bool(self.scheduler.running),
            "events": self.events.status() if self.events else None,
        }


def build(settings: PredictorSettings, directory: Path, store: ModelStore | None = None) -> Agent:
    """An agent on the bucket (`store`, else one from the settings) handing over into `directory`."""
    if store is None:
        bucket = gcs.client(settings).bucket(settings.gcs_bucket)
        store = ModelStore(bucket, settings.keyring(), gcs.retry(settings), settings.artifact_limits())
    publisher = Publisher(directory)
    registry = Registry(StagingStore(store, publisher), settings, AgentMetrics())
    registry.on_swap.append(publisher.publish)
    registry.on_record.append(lambda history: handover.write_history(directory, history))
    return Agent(settings, registry)
