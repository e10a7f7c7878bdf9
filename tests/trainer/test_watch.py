"""`python -m trainer --watch` (trainer.watch) on the real emulators: bursts coalesce, acks wait for the run."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from google.cloud import storage

from core import gcs, layout
from core.lineage import Trigger
from core.states import RunOutcome
from core.store import ModelStore
from devstack import emulators
from devstack.emulators import Service
from tests.conftest import PROJECT, TOPIC
from tests.emulator_fixtures import seed_evalset
from tests.faults.stack import PROJECT as STACK
from tests.faults.stack import start_emulators
from tests.polling import wait_for
from tests.trainer.conftest import csv_text, iris_rows, put
from trainer.__main__ import run_and_report
from trainer.settings import TrainerSettings
from trainer.watch import Batch, Watcher

BUCKET = "iris-models"


def finalize(name: str, bucket: str = BUCKET, event: str = "OBJECT_FINALIZE") -> dict[str, str]:
    return {"bucketId": bucket, "objectId": name, "objectGeneration": "7", "eventType": event}


def test_a_batch_is_due_after_the_quiet_period_or_the_maximum_delay() -> None:
    batch = Batch()
    assert batch.due_in(0.0, quiet=1.0, max_delay=5.0) is None
    batch.add("a", "data/a.csv#1", now=10.0)
    assert batch.due_in(10.5, quiet=1.0, max_delay=5.0) == pytest.approx(0.5)
    for moment in (10.8, 11.6, 12.4, 13.2, 14.0, 14.8):  # a steady trickle keeps resetting the quiet period ...
        batch.add("b", "data/b.csv#1", now=moment)
    assert batch.due_in(14.8, quiet=1.0, max_delay=5.0) == pytest.approx(0.2)  # ... up to opened + max_delay
    assert batch.due_in(15.0, quiet=1.0, max_delay=5.0) == 0


class Running:
    """A Watcher serving in a thread until the test ends."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher, self.stop = watcher, threading.Event()
        self.thread = threading.Thread(target=watcher.serve, args=(self.stop,), daemon=True)
        self.thread.start()

    def runs(self, trigger: Trigger, since: int = 0) -> list[tuple[Trigger, RunOutcome, int]]:
        """Runs with this trigger, from the `since`-th one on."""
        return [run for run in list(self.watcher.runs) if run[0] is trigger][since:]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.watcher.close()
        assert not self.thread.is_alive()


def watcher_settings(trainer_settings: TrainerSettings, pubsub_host: str, topic: str) -> TrainerSettings:
    return trainer_settings.model_copy(
        update={
            "pubsub_emulator_host": pubsub_host,
            "data_events_topic": topic,
            "watch_subscription": f"trainer-{uuid.uuid4().hex[:8]}",
            "train_quiet_period": 1.0,
            "train_max_delay": 8.0,
            "train_retry_delay": 1,
        }
    )


@pytest.fixture
def start_watcher(trainer_settings: TrainerSettings, pubsub_emulator: Service) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(run: Callable[[Trigger], RunOutcome] | None = None) -> Running:
        settings = watcher_settings(trainer_settings, pubsub_emulator.host, TOPIC)
        running = Running(Watcher(settings, run or (lambda trigger: run_and_report(settings, trigger))))
        started.append(running)
        wait_for(lambda: running.runs(Trigger.RECONCILE), 60, "the watcher's first reconcile run")
        # that run seeded data/iris.csv, whose own notification is one event run (skipped: no new data)
        wait_for(lambda: running.runs(Trigger.EVENT), 30, "the seed file's event run")
        return running

    yield start
    for running in started:
        running.close()


def newest_lineage_with(store: ModelStore, objects: int) -> object:
    model = store.newest_valid()
    return model.lineage if model and model.lineage.data_objects_total >= objects else None


def test_a_burst_of_20_files_in_2_s_is_at_most_2_runs_and_the_model_learns_all_20(
    start_watcher: Callable[..., Running], bucket: storage.Bucket, store: ModelStore
) -> None:
    running = start_watcher()  # its reconcile run seeds data/iris.csv and publishes the first model
    names = [f"data/burst-{i:02d}.csv" for i in range(20)]
    with ThreadPoolExecutor(4) as pool:
        blobs = list(pool.map(lambda i: put(bucket, names[i], csv_text(iris_rows(noise=0.01, seed=i))), range(20)))
    lineage = wait_for(lambda: newest_lineage_with(store, 21), 90, "a model trained on all 20 files")
    assert lineage.trigger == "event"  # type: ignore[attr-defined]
    assert {f"{b.name}#{b.generation}" for b in blobs} <= set(lineage.data_objects)  # type: ignore[attr-defined]
    assert 0 < lineage.data_to_publish_s < 30  # type: ignore[attr-defined]
    time.sleep(2.0)  # let any second batch of the burst run too
    events = running.runs(Trigger.EVENT, since=1)
    assert 1 <= len(events) <= 2, events
    assert sum(count for _, _, count in events) >= 20


def test_a_failed_run_hands_its_events_back_and_they_are_retried(
    start_watcher: Callable[..., Running], trainer_settings: TrainerSettings, bucket: storage.Bucket, store: ModelStore
) -> None:
    failures: list[RunOutcome] = []

    def flaky(trigger: Trigger) -> RunOutcome:
        if trigger is Trigger.EVENT and failures:
            return failures.pop(0)
        return run_and_report(trainer_settings, trigger)

    running = start_watcher(flaky)
    failures += [RunOutcome.FAILED, RunOutcome.BUSY]
    blob = put(bucket, "data/late.csv", csv_text(iris_rows(noise=0.01, seed=99)))
    lineage = wait_for(lambda: newest_lineage_with(store, 2), 60, "the retried event's model")
    assert f"data/late.csv#{blob.generation}" in lineage.data_objects  # type: ignore[attr-defined]
    wait_for(lambda: len(running.runs(Trigger.EVENT, since=1)) >= 3, 30, "the publishing run's return")
    assert [outcome for _, outcome, _ in running.runs(Trigger.EVENT, since=1)][:3] == [
        RunOutcome.FAILED,
        RunOutcome.BUSY,
        RunOutcome.PUBLISHED,
    ]


def test_other_objects_and_duplicate_events_never_publish_twice(
    start_watcher: Callable[..., Running], bucket: storage.Bucket, store: ModelStore
) -> None:
    running = start_watcher()
    first = [ref.version for ref in store.list_versions()]
    put(bucket, layout.INCOMING + "dropped.csv", csv_text(iris_rows()))
    put(bucket, layout.QUARANTINE + "bad.csv", b"not,a,csv\n")
    put(bucket, layout.DATA + "readme.txt", b"notes")
    time.sleep(3.0)  # quiet period + a pull: any (wrong) event run would have started by now
    assert running.runs(Trigger.EVENT, since=1) == []
    blob = put(bucket, "data/one.csv", csv_text(iris_rows(noise=0.01, seed=3)))
    wait_for(lambda: running.runs(Trigger.EVENT, since=1), 30, "the event run for data/one.csv")
    with emulators.publisher_client(running.watcher.settings.pubsub_emulator_host or "") as publisher:
        attributes = finalize(blob.name, bucket.name) | {"objectGeneration": str(blob.generation)}
        publisher.publish(publisher.topic_path(PROJECT, TOPIC), b"{}", **attributes).result(timeout=10)
    wait_for(lambda: len(running.runs(Trigger.EVENT, since=1)) >= 2, 30, "the duplicate event's run")
    assert [outcome for _, outcome, _ in running.runs(Trigger.EVENT, since=1)] == [
        RunOutcome.PUBLISHED,
        RunOutcome.SKIPPED,
    ]
    assert len(store.list_versions()) == len(first) + 1


def test_a_pubsub_emulator_restart_loses_no_retrain(tmp_path: Path, trainer_settings: TrainerSettings) -> None:
    emu = start_emulators(tmp_path)
    try:
        client = emulators.storage_client(emu.gcs.host, STACK)
        bucket = client.create_bucket(f"watch-{uuid.uuid4().hex[:8]}")
        seed_evalset(bucket)
        settings = watcher_settings(
            trainer_settings.model_copy(
                update={"storage_emulator_host": emu.gcs.host, "gcs_bucket": bucket.name, "google_cloud_project": STACK}
            ),
            emu.pubsub.host,
            emu.topic,
        )
        store = ModelStore(bucket, settings.keyring(), gcs.retry(settings))
        running = Running(Watcher(settings, lambda trigger: run_and_report(settings, trigger)))
        try:
            wait_for(lambda: running.runs(Trigger.RECONCILE), 60, "the first reconcile run")
            emu.stop_pubsub()
            lost = put(bucket, "data/while-down.csv", csv_text(iris_rows(noise=0.01, seed=7)))
            time.sleep(1.0)
            emu.restart_pubsub()  # empty: the subscription is gone and the notification of `lost` too
            lineage = wait_for(lambda: newest_lineage_with(store, 2), 60, "a model that includes the lost file")
            assert f"{lost.name}#{lost.generation}" in lineage.data_objects  # type: ignore[attr-defined]
            # fake-gcs-server may deliver the held-back notification once the topic is back: event or reconcile
            assert lineage.trigger in ("reconcile", "event")  # type: ignore[attr-defined]
            # the subscription was recreated, then reconciled (the run is recorded once it returned)
            wait_for(lambda: len(running.runs(Trigger.RECONCILE)) >= 2, 30, "the reconcile run after the restart")
            later = put(bucket, "data/after.csv", csv_text(iris_rows(noise=0.01, seed=8)))
            lineage = wait_for(lambda: newest_lineage_with(store, 3), 60, "the next file's event-driven model")
            assert (lineage.trigger, lineage.data_objects[0]) == ("event", f"{later.name}#{later.generation}")  # type: ignore[attr-defined]
        finally:
            running.close()
    finally:
        emu.stop()


def test_an_event_for_a_vanished_object_is_one_skipped_run(
    start_watcher: Callable[..., Running], bucket: storage.Bucket, store: ModelStore
) -> None:
    running = start_watcher()
    versions = len(store.list_versions())
    put(bucket, "data/gone.csv", csv_text(iris_rows(noise=0.01, seed=5))).delete()  # gone before its run
    wait_for(lambda: running.runs(Trigger.EVENT, since=1), 30, "the run for the vanished object's event")
    time.sleep(2.0)  # a redelivered (unacked) event would have run again by now
    assert [outcome for _, outcome, _ in running.runs(Trigger.EVENT, since=1)] == [RunOutcome.SKIPPED]
    assert len(store.list_versions()) == versions
