"""The shipper on fake-gcs-server: records of several processes reach the bucket once each, wait while it is down,
survive a shipper killed mid-way, and a clean shutdown loses none."""

from __future__ import annotations

import multiprocessing
import re
from collections import Counter
from pathlib import Path

import pytest
from google.api_core.retry import Retry
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from core import shipped
from core.iris import CLASSES
from devstack import emulators
from devstack.emulators import Service
from predictor.predlog import record
from predictor.predlog.log import PredictionLog
from predictor.predlog.metrics import PredictionLogCounters
from predictor.predlog.shipper import Shipper
from predictor.predlog.spool import SHIPPING
from tests import polling
from tests.emulator_fixtures import PROJECT
from tests.predictor.predlog import helpers
from tests.predictor.predlog.helpers import PROBABILITIES, ROW, settings

pytestmark = pytest.mark.integration

RETRY: Retry = DEFAULT_RETRY.with_timeout(5.0).with_delay(initial=0.1, maximum=0.5)
OBJECT = re.compile(r"predictions/date=(\d{4}-\d\d-\d\d)/pod-a-(\d{4})(\d\d)(\d\d)T\d{6}-[0-9a-f]{12}-\d{6}\.jsonl\.gz")


def leftover(spool: Path) -> list[str]:
    return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


def write_answers(spool: Path, count: int, **overrides: object) -> PredictionLog:
    log = PredictionLog.from_settings(settings(spool, **overrides), spool.parent / "handover")
    for i in range(count):
        log.log_answer(f"req-{i}", "predict", "v1", [ROW], [CLASSES[i % 3]], [PROBABILITIES])
    return log


def test_records_of_two_processes_reach_the_bucket_once_each(
    tmp_path: Path, storage_client: storage.Client, bucket_name: str
) -> None:
    spool = tmp_path / "spool"
    counters = PredictionLogCounters()
    shipper = Shipper(settings(spool), storage_client.bucket(bucket_name), spool, "pod-a", RETRY, counters)
    shipper.start()  # ships while the writers write
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=helpers.write_records, args=(str(spool), tag, 600)) for tag in ("a", "b")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    assert [w.exitcode for w in writers] == [0, 0]
    assert shipper.stop()

    objects = helpers.shipped(storage_client, bucket_name)
    received = helpers.ids(objects)
    assert [i for i, n in Counter(received).items() if n > 1] == [], "duplicated"
    assert sorted(received) == sorted(f"{tag}-{i}" for tag in ("a", "b") for i in range(600)), "lost or foreign"
    assert len(objects) > 2, "several files per writer (rotation by size and age)"
    for name, records in objects.items():
        match = OBJECT.fullmatch(name)
        assert match, name
        assert match.group(1) == "-".join(match.group(2, 3, 4)) == shipped.day(records[0].time)
    refusals = [r for rs in objects.values() for r in rs if isinstance(r, record.Refusal)]
    assert len(refusals) == 120
    assert {r.reason for r in refusals} == {"petal_length: expected a number"}
    assert (counters.value("sent"), counters.value("failed"), counters.value("dropped")) == (1200, 0, 0)
    assert leftover(spool) == []


def test_a_clean_shutdown_ships_everything_at_once(
    tmp_path: Path, storage_client: storage.Client, bucket_name: str
) -> None:
    spool = tmp_path / "spool"
    # neither size nor age would close the file for an hour: only close() does
    overrides = {"prediction_log_rotate_seconds": 3600, "prediction_log_rotate_bytes": 64 * 1024 * 1024}
    shipper = Shipper(settings(spool), storage_client.bucket(bucket_name), spool, "pod-a", RETRY)
    shipper.start()
    log = write_answers(spool, 3000, **overrides)
    assert log.close()
    assert shipper.stop()
    received = helpers.ids(helpers.shipped(storage_client, bucket_name))
    assert sorted(received) == sorted(f"req-{i}" for i in range(3000))
    assert leftover(spool) == []


def test_files_wait_while_the_bucket_is_down_and_ship_when_it_is_back(tmp_path: Path, own_gcs: Service) -> None:
    spool = tmp_path / "spool"
    client = emulators.storage_client(own_gcs.host, PROJECT)
    client.create_bucket("predlog-down")
    assert write_answers(spool, 500).close()
    files = leftover(spool)
    assert len(files) > 1

    own_gcs.stop()
    counters = PredictionLogCounters()
    shipper = Shipper(settings(spool), client.bucket("predlog-down"), spool, "pod-a", None, counters)
    assert not shipper.run_once()
    assert not shipper.run_once()
    first_file_records = counters.value("failed") / 2
    assert first_file_records > 0, "each failed attempt counts its file's records"
    assert counters.value("sent") == 0
    assert counters.value("dropped") == 0
    assert len(leftover(spool)) == len(files), "nothing deleted"
    assert sum(name.endswith(SHIPPING) for name in leftover(spool)) == 1, "one claimed file, waiting"
    status = shipper.status()
    assert status["files_waiting"] == len(files)
    assert status["bytes_waiting"] == sum(p.stat().st_size for p in spool.iterdir())
    shipper.failures = 3
    assert 0.1 * 4 * 0.5 <= shipper.delay() <= 0.4, "backs off (doubling the interval per failure, capped)"

    restarted = emulators.start_fake_gcs(own_gcs.port, None, tmp_path / "fake-gcs-again.log")
    try:
        client.create_bucket("predlog-down")  # the memory backend forgot it
        assert shipper.run_once()
        received = helpers.ids(helpers.shipped(client, "predlog-down"))
    finally:
        restarted.stop()
    assert sorted(received) == sorted(f"req-{i}" for i in range(500))
    assert counters.value("sent") == 500
    assert leftover(spool) == []
    assert shipper.status()["files_waiting"] == 0


def test_a_shipper_killed_before_deleting_never_uploads_twice(
    tmp_path: Path, gcs_emulator: Service, storage_client: storage.Client, bucket_name: str
) -> None:
    spool = tmp_path / "spool"
    assert write_answers(spool, 200, prediction_log_rotate_bytes=1024 * 1024).close()
    assert len(leftover(spool)) == 1

    context = multiprocessing.get_context("spawn")
    dying = context.Process(target=helpers.ship_and_die, args=(str(spool), gcs_emulator.host, PROJECT, bucket_name))
    dying.start()
    dying.join(60)
    assert dying.exitcode == -9
    [claimed] = leftover(spool)
    assert claimed.endswith(SHIPPING), "killed after the upload, before the delete"
    [first] = storage_client.list_blobs(bucket_name, prefix=helpers.PREFIX)

    counters = PredictionLogCounters()
    assert Shipper(settings(spool), storage_client.bucket(bucket_name), spool, "pod-a", RETRY, counters).run_once()
    [again] = storage_client.list_blobs(bucket_name, prefix=helpers.PREFIX)
    assert (again.name, again.generation) == (first.name, first.generation), "not uploaded a second time"
    assert sorted(helpers.ids(helpers.shipped(storage_client, bucket_name))) == sorted(f"req-{i}" for i in range(200))
    assert counters.value("sent") == 200
    assert leftover(spool) == []


def test_the_counters_add_up_over_the_pods_processes(
    tmp_path: Path,
    gcs_emulator: Service,
    storage_client: storage.Client,
    bucket_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In the predictor's multiprocess metrics mode, a worker's drops and the agent's sends show in one exposition."""
    from prometheus_client import CollectorRegistry, multiprocess

    spool, metrics_dir = tmp_path / "spool", tmp_path / "metrics"
    metrics_dir.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))  # for the processes spawned below
    context = multiprocessing.get_context("spawn")
    for target, args in (
        (helpers.overflow_then_close, (str(spool),)),
        (helpers.ship_once, (str(spool), gcs_emulator.host, PROJECT, bucket_name)),
    ):
        process = context.Process(target=target, args=args)
        process.start()
        process.join(60)
        assert process.exitcode == 0
    aggregate = CollectorRegistry()
    multiprocess.MultiProcessCollector(aggregate, path=str(metrics_dir))
    values = {
        outcome: aggregate.get_sample_value("predictor_prediction_log_records_total", {"outcome": outcome})
        for outcome in ("sent", "dropped", "failed")
    }
    assert values == {"sent": 10.0, "dropped": 20.0, "failed": 0.0}
    assert len(helpers.ids(helpers.shipped(storage_client, bucket_name))) == 10


def test_the_shipper_thread_backs_off_while_the_bucket_is_down_and_ships_once_back(
    tmp_path: Path, own_gcs: Service
) -> None:
    spool = tmp_path / "spool"
    client = emulators.storage_client(own_gcs.host, PROJECT)
    client.create_bucket("predlog-thread")
    own_gcs.stop()
    assert write_answers(spool, 300).close()
    counters = PredictionLogCounters()
    shipper = Shipper(settings(spool), client.bucket("predlog-thread"), spool, "pod-a", None, counters)
    shipper.start()
    restarted = None
    try:
        polling.wait_for(lambda: shipper.failures >= 3, timeout=30, what="three failed passes")
        assert counters.value("sent") == 0
        restarted = emulators.start_fake_gcs(own_gcs.port, None, tmp_path / "fake-gcs-again.log")
        client.create_bucket("predlog-thread")
        polling.wait_for(lambda: counters.value("sent") == 300, timeout=30, what="every record sent")
        assert shipper.failures == 0
        received = helpers.ids(helpers.shipped(client, "predlog-thread"))
    finally:
        shipper.stop()
        if restarted is not None:
            restarted.stop()
    assert sorted(received) == sorted(f"req-{i}" for i in range(300))
    assert counters.value("failed") >= 3
