"""Offline pieces of the model events: subscription names, the dedupe set, the fallback."""

from __future__ import annotations

import itertools
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core.errors import StoreUnavailable
from predictor.agent import reconcile, service
from predictor.agent.subscription import SeenEvents, subscription_id
from predictor.settings import PredictorSettings
from tests import keys
from tests.polling import wait_for

VALID_ID = re.compile(r"^(?!goog)[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")


def settings_with(**values: Any) -> PredictorSettings:
    return PredictorSettings(**{**keys.settings(), **values})


@pytest.mark.parametrize(
    ("prefix", "pod"),
    [
        ("predictor", "iris-predictor-7d9f8-abcde"),
        ("predictor", "pod/with spaces:and*stars"),
        ("1numeric", "x"),
        ("google", "pod"),
        ("p", "p" * 400),
        ("-", ""),
    ],
)
def test_subscription_ids_are_valid_and_unique(prefix: str, pod: str) -> None:
    settings = settings_with(subscription_prefix=prefix, pod_name=pod)
    ids = {subscription_id(settings, pid=4242) for _ in range(20)}
    assert len(ids) == 20
    for name in ids:
        assert VALID_ID.match(name), name
        assert re.search(r"-4242-[0-9a-f]{8}$", name), name


def test_seen_events_is_a_bounded_lru() -> None:
    seen = SeenEvents(size=3)
    for generation in (1, 2, 3):
        seen.add(("b", "o", generation))
    assert ("b", "o", 1) in seen  # touching 1 makes 2 the oldest
    seen.add(("b", "o", 4))
    assert ("b", "o", 2) not in seen
    assert all(("b", "o", g) in seen for g in (1, 3, 4))


def test_interval_is_short_without_a_subscriber() -> None:
    settings = settings_with(reconcile_interval=60, reconcile_interval_without_events=5)
    assert (reconcile.interval(settings, events=True), reconcile.interval(settings, events=False)) == (60, 5)


def test_a_subscriber_that_cannot_be_built_falls_back_to_polling(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No emulator host and no usable credentials: the agent still starts and polls on the short interval."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/credentials.json")  # fails before any I/O
    settings = settings_with(
        storage_emulator_host="127.0.0.1:9",
        gcs_retry_deadline=0.2,
        pubsub_emulator_host=None,
        reconcile_interval_without_events=7,
    )
    agent = service.build(settings, tmp_path)
    agent.start()
    try:
        assert agent.events is None
        assert agent.scheduler.get_job(reconcile.JOB_ID).trigger.interval.total_seconds() == 7
    finally:
        agent.stop()
    assert not agent.scheduler.running


class Recorder:
    """A registry stand-in that records reconciles; it becomes ready on the `ready_after`-th call."""

    def __init__(self, ready_after: int = 1, unavailable: int = 0) -> None:
        self.calls: list[tuple[str, float]] = []
        self._ready_after, self._unavailable = ready_after, unavailable

    @property
    def ready(self) -> bool:
        return len(self.calls) >= self._ready_after

    def reconcile(self, trigger: str = "reconcile") -> None:
        self.calls.append((trigger, time.monotonic()))
        if len(self.calls) <= self._unavailable:
            raise StoreUnavailable("GCS unavailable: test")


def test_run_now_reconciles_at_once_and_requests_coalesce() -> None:
    recorder = Recorder()
    sched = reconcile.scheduler()
    reconcile.schedule(sched, recorder, 300)
    sched.start()
    try:
        reconcile.run_now(sched, recorder)
        wait_for(lambda: len(recorder.calls) == 1, 2, "the immediate reconcile")
        assert recorder.calls[0][0] == "reconcile"
        assert sched.get_job(reconcile.JOB_ID) is not None  # the interval job stays
    finally:
        sched.shutdown(wait=False)


def test_run_soon_keeps_the_earliest_request_so_a_stream_of_requests_never_starves_it() -> None:
    recorder = Recorder()
    sched = reconcile.scheduler()
    sched.start()
    try:
        asked = time.monotonic()
        reconcile.run_soon(sched, recorder, 0.6)
        first_due = sched.get_job(reconcile.NOW_JOB_ID).next_run_time
        for _ in range(5):  # later requests while one is pending: it stands
            time.sleep(0.05)
            reconcile.run_soon(sched, recorder, 0.6)
        assert sched.get_job(reconcile.NOW_JOB_ID).next_run_time == first_due
        reconcile.run_soon(sched, recorder, 5.0)  # due later than the pending one: nothing changes
        assert sched.get_job(reconcile.NOW_JOB_ID).next_run_time == first_due
        wait_for(lambda: len(recorder.calls) == 1, 3, "the coalesced reconcile")
        assert 0.55 <= recorder.calls[0][1] - asked < 1.5
        time.sleep(0.3)
        assert len(recorder.calls) == 1

        reconcile.run_soon(sched, recorder, 30.0)
        reconcile.run_now(sched, recorder)  # an earlier request brings the pending one forward
        wait_for(lambda: len(recorder.calls) == 2, 2, "the reconcile brought forward")
        assert sched.get_job(reconcile.NOW_JOB_ID) is None
    finally:
        sched.shutdown(wait=False)


def test_initial_load_backs_off_exponentially_up_to_the_cap_and_survives_errors() -> None:
    recorder = Recorder(ready_after=5, unavailable=2)
    settings = settings_with(load_retry_max=0.8)
    assert reconcile.initial_load(recorder, settings, threading.Event())
    assert [trigger for trigger, _ in recorder.calls] == ["startup"] * 5
    gaps = [b[1] - a[1] for a, b in itertools.pairwise(recorder.calls)]
    for gap, expected in zip(gaps, [0.5, 0.8, 0.8, 0.8], strict=True):  # 0.5 s, doubled, capped by LOAD_RETRY_MAX
        assert expected <= gap < expected + 0.3


def test_initial_load_stops_promptly() -> None:
    stop = threading.Event()
    loader = threading.Thread(target=reconcile.initial_load, args=(Recorder(ready_after=99), settings_with(), stop))
    loader.start()
    time.sleep(0.2)
    stop.set()
    loader.join(1)
    assert not loader.is_alive()
