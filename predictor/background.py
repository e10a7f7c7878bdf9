"""Per-worker background work: the startup load, the model-events subscriber and the reconcile scheduler.

gunicorn's post_worker_init calls `start(app)` in each worker after the fork (nothing starts at import), and
worker_exit calls `stop(app)`. The state lives in `app.extensions["background"]`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from predictor import reconcile
from predictor.events import ModelEvents
from predictor.settings import PredictorSettings

log = logging.getLogger(__name__)

EXTENSION = "background"
STOP_BUDGET_MAX = 10.0
"""Most seconds stop() spends (it also keeps to half of GRACEFUL_TIMEOUT)."""


@dataclass
class Background:
    """One worker's background threads."""

    stopping: threading.Event
    loader: threading.Thread
    scheduler: BackgroundScheduler
    events: ModelEvents | None

    def status(self) -> dict[str, Any]:
        return {
            "loading": self.loader.is_alive(),
            "scheduler_running": bool(self.scheduler.running),
            "events": self.events.status() if self.events else None,
        }


def start(app: Flask) -> Background:
    """Start the worker's background work (idempotent); returns at once, the model loads in a thread."""
    if EXTENSION in app.extensions:
        return app.extensions[EXTENSION]
    registry, settings = app.extensions["registry"], app.extensions["settings"]
    sched = reconcile.scheduler()
    events = _subscriber(registry, settings, sched) if settings.model_events_enabled else None
    interval = reconcile.interval(settings, events=events is not None)
    reconcile.schedule(sched, registry, interval)
    sched.start()
    stopping = threading.Event()
    loader = threading.Thread(
        target=reconcile.initial_load, args=(registry, settings, stopping), name="model-startup-load", daemon=True
    )
    loader.start()
    background = app.extensions[EXTENSION] = Background(stopping, loader, sched, events)
    log.info("background started", extra={"events": events is not None, "interval_s": interval})
    return background


def _subscriber(registry: Any, settings: PredictorSettings, sched: BackgroundScheduler) -> ModelEvents | None:
    """Start the subscriber (before the first listing, so nothing published after it is missed); None if it
    cannot even be built (no credentials, say): the worker still serves, reconciling on the short interval."""
    try:
        events = ModelEvents(registry, settings, on_reconnect=lambda: reconcile.run_now(sched, registry))
    except Exception:
        log.exception("model events unavailable; falling back to RECONCILE_INTERVAL_WITHOUT_EVENTS polling")
        return None
    events.start()
    return events


def stop(app: Flask) -> None:
    """Stop the scheduler, cancel the stream and delete the subscription, within the graceful timeout."""
    background: Background | None = app.extensions.pop(EXTENSION, None)
    if background is None:
        return
    settings: PredictorSettings = app.extensions["settings"]
    started = time.monotonic()
    background.stopping.set()
    background.scheduler.shutdown(wait=False)
    if background.events is not None:
        background.events.stop(timeout=min(STOP_BUDGET_MAX, settings.graceful_timeout / 2))
    background.loader.join(timeout=0.5)
    log.info("background stopped", extra={"duration_s": round(time.monotonic() - started, 3)})
