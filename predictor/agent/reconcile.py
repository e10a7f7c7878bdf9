"""The reconcile job: list models/ and load the newest valid artifact if it is newer than the one served.

It runs in the pod's model agent: at start (with backoff until a model is ready), every RECONCILE_INTERVAL
(RECONCILE_INTERVAL_WITHOUT_EVENTS when the subscriber is disabled) and at once after every subscriber
reconnect, so a missed notification only delays a swap.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.schedulers.background import BackgroundScheduler

from core.errors import StoreUnavailable
from core.states import SwapTrigger
from predictor.settings import PredictorSettings

log = logging.getLogger(__name__)

JOB_ID = "reconcile"
NOW_JOB_ID = "reconcile-now"
FIRST_RETRY_S = 0.5
"""First delay between startup load attempts; it doubles up to LOAD_RETRY_MAX."""
RATE_LIMITED_DELAY_S = 1.0
"""How soon a reconcile follows a notification refused a lookup by NOTIFICATION_LOOKUP_RATE (at most one pending)."""


class Reconciles(Protocol):
    """What the reconcile job needs from the registry."""

    def reconcile(self, trigger: str = SwapTrigger.RECONCILE) -> Any: ...

    @property
    def ready(self) -> bool: ...


def interval(settings: PredictorSettings, events: bool) -> float:
    """Seconds between reconciles: short when the poll is the only trigger (no subscriber running)."""
    return settings.reconcile_interval if events else settings.reconcile_interval_without_events


def reconcile_once(registry: Reconciles, trigger: str = SwapTrigger.RECONCILE) -> Any:
    """One reconcile; errors are logged, never raised (the next run tries again)."""
    try:
        return registry.reconcile(trigger)
    except StoreUnavailable as e:
        log.warning("reconcile (%s): store unavailable: %s", trigger, e.message)
    except Exception:
        log.exception("reconcile (%s) failed", trigger)
    return None


def initial_load(registry: Reconciles, settings: PredictorSettings, stop: threading.Event) -> bool:
    """Reconcile with exponential backoff (capped by LOAD_RETRY_MAX) until a model is ready; False if stopped."""
    delay = FIRST_RETRY_S
    while not stop.is_set():
        reconcile_once(registry, SwapTrigger.STARTUP)
        if registry.ready:
            return True
        log.warning("no model loaded yet; next attempt in %.1f s", delay)
        if stop.wait(delay):
            break
        delay = min(delay * 2, settings.load_retry_max)
    return False


def scheduler() -> BackgroundScheduler:
    """A scheduler whose late jobs still run (once, coalesced); not started yet."""
    return BackgroundScheduler(timezone=UTC, daemon=True, job_defaults={"misfire_grace_time": None, "coalesce": True})


def schedule(sched: BackgroundScheduler, registry: Reconciles, seconds: float) -> None:
    """Add the interval reconcile job (first run one interval from now; startup is initial_load's)."""
    sched.add_job(reconcile_once, "interval", seconds=seconds, args=(registry,), id=JOB_ID, max_instances=1)


def run_now(sched: BackgroundScheduler, registry: Reconciles) -> None:
    """Reconcile as soon as possible in the scheduler's threads (pending requests coalesce into one)."""
    run_soon(sched, registry, 0.0)


def run_soon(sched: BackgroundScheduler, registry: Reconciles, delay: float) -> None:
    """Reconcile within `delay` s: a request already due by then stands (so a stream of requests, a flood of
    rate-limited notifications say, costs one listing per `delay`, never starves), a later one is brought forward.
    A request made while a reconcile runs queues behind it on the registry's lock."""
    due = datetime.now(UTC) + timedelta(seconds=delay)
    pending = sched.get_job(NOW_JOB_ID)
    if pending is not None and pending.next_run_time is not None and pending.next_run_time <= due:
        return
    sched.add_job(
        reconcile_once,
        "date",
        run_date=due,
        args=(registry, SwapTrigger.RECONCILE),
        id=NOW_JOB_ID,
        replace_existing=True,
        max_instances=2,
    )
