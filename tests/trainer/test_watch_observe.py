"""The data watcher watches itself (core.observe) on the real emulators: stream metrics move with its messages, a CSV
whose notification never arrives is a missed event (counted, warned, the channel recycled, the data trained by a
reconcile run), and its liveness probe fails while its loop is stalled."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests
from google.cloud import storage

from core import observe
from core.lineage import Trigger
from core.states import RunOutcome
from devstack import emulators
from devstack.emulators import Service
from tests.conftest import PROJECT, TOPIC
from tests.polling import wait_for
from tests.trainer.conftest import csv_text, iris_rows, put
from tests.trainer.test_watch import Running, watcher_settings
from trainer.settings import TrainerSettings
from trainer.watch import Watcher

pytestmark = pytest.mark.integration


def sample(watcher: Watcher, name: str, **labels: str) -> float:
    return watcher.health.registry.get_sample_value(name, labels) or 0.0


class Recorder:
    """A training run that only records its trigger (optionally blocking until released)."""

    def __init__(self) -> None:
        self.triggers: list[Trigger] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, trigger: Trigger) -> RunOutcome:
        self.triggers.append(trigger)
        self.release.wait(60)
        return RunOutcome.SKIPPED


@pytest.fixture
def start(trainer_settings: TrainerSettings, pubsub_emulator: Service) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start_watcher(run: Recorder, topic: str = TOPIC, **overrides: object) -> Running:
        settings = watcher_settings(trainer_settings, pubsub_emulator.host, topic)
        settings = settings.model_copy(update={"watch_audit_interval": 0.5, "missed_event_after": 3.0, **overrides})
        running = Running(Watcher(settings, run))
        started.append(running)
        wait_for(lambda: Trigger.RECONCILE in run.triggers, 60, "the watcher's first reconcile run")
        return running

    yield start_watcher
    for running in started:
        running.close()


def test_stream_metrics_move_with_the_data_events(start: Callable[..., Running], bucket: storage.Bucket) -> None:
    run = Recorder()
    watcher = start(run).watcher
    assert sample(watcher, "trainer_watch_subscription_connected") == 1
    before = sample(watcher, "trainer_watch_messages_total", outcome="data")
    put(bucket, "data/observed.csv", csv_text(iris_rows(noise=0.01, seed=3)))
    wait_for(lambda: sample(watcher, "trainer_watch_messages_total", outcome="data") > before, 30, "the data event")
    wait_for(lambda: Trigger.EVENT in run.triggers, 30, "its event run")
    assert sample(watcher, "trainer_watch_seconds_since_last_message") < 10
    wait_for(lambda: watcher.health.status()["awaiting_notification"] == 0, 10, "the audit to settle")
    assert sample(watcher, "trainer_watch_missed_events_total") == 0
    assert sample(watcher, "trainer_watch_resubscribes_total") == 0


def test_a_csv_whose_notification_never_arrives_is_a_missed_event_and_is_trained(
    start: Callable[..., Running], bucket: storage.Bucket, pubsub_emulator: Service, caplog: pytest.LogCaptureFixture
) -> None:
    silent = f"silent-{uuid.uuid4().hex[:8]}"  # a topic the bucket never notifies: the stream hears nothing
    emulators.ensure_topic(pubsub_emulator.host, PROJECT, silent)
    run = Recorder()
    watcher = start(run, topic=silent).watcher
    runs_before = run.triggers.count(Trigger.RECONCILE)
    caplog.set_level(logging.WARNING, logger="core.observe")
    blob = put(bucket, "data/unheard.csv", csv_text(iris_rows(noise=0.01, seed=4)))
    wait_for(lambda: sample(watcher, "trainer_watch_missed_events_total") >= 1, 30, "the missed event")
    assert f"data/unheard.csv#{blob.generation}" in watcher.health.status()["recent_missed"]
    assert any("data/unheard.csv" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    wait_for(lambda: sample(watcher, "trainer_watch_resubscribes_total") >= 1, 10, "the channel recycled")
    # the data is not lost: a reconcile run trains it
    wait_for(lambda: run.triggers.count(Trigger.RECONCILE) > runs_before, 30, "the reconcile run after the miss")
    assert sample(watcher, "trainer_watch_messages_total", outcome="data") == 0


def test_liveness_fails_while_the_loop_is_stalled_and_recovers(start: Callable[..., Running]) -> None:
    run = Recorder()
    watcher = start(run, watch_stale_after=3.0).watcher
    server = observe.serve("127.0.0.1", 0, watcher.probe, watcher.health.registry, "watcher")
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        wait_for(lambda: requests.get(f"{url}/healthz", timeout=2).status_code == 200, 10, "a live watcher")
        metrics = requests.get(f"{url}/metrics", timeout=2).text
        for name in ("subscription_connected", "seconds_since_last_message", "missed_events_total"):
            assert f"trainer_watch_{name}" in metrics
        run.release.clear()  # the next run hangs, and with it the loop
        watcher.reconcile_at = 0.0
        wait_for(lambda: requests.get(f"{url}/healthz", timeout=2).status_code == 503, 15, "a stale heartbeat")
        assert requests.get(f"{url}/healthz", timeout=2).json()["live"] is False
        run.release.set()
        wait_for(lambda: requests.get(f"{url}/healthz", timeout=2).status_code == 200, 15, "the loop going round")
    finally:
        run.release.set()
        server.shutdown()
        server.server_close()
