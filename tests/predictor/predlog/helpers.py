"""Helpers of the prediction log tests, importable by the processes they spawn."""

from __future__ import annotations

import gzip
import os
import signal
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from google.cloud import storage

from core.iris import CLASSES
from predictor.predlog import record
from predictor.predlog.log import PredictionLog
from predictor.predlog.settings import PredictionLogSettings
from predictor.predlog.shipper import Shipper

PREFIX = "predictions/"
ROW = [5.1, 3.5, 1.4, 0.2]
PROBABILITIES = [0.97, 0.02, 0.01]


def settings(spool: Path, **overrides: Any) -> PredictionLogSettings:
    values: dict[str, Any] = {
        "prediction_log_dir": spool,
        "prediction_log_rotate_bytes": 2048,
        "prediction_log_rotate_seconds": 0.5,
        "prediction_log_batch_interval": 0.1,
        "prediction_log_retry_max": 0.5,
        "prediction_log_prefix": PREFIX,
        **overrides,
    }
    return PredictionLogSettings.model_validate(values)


def write_records(spool: str, tag: str, count: int) -> None:
    """A serving process: `count` answers with ids `<tag>-<i>` (a refusal every 10th), then a clean close."""
    log = PredictionLog.from_settings(settings(Path(spool)), Path(spool).parent / "handover")
    for i in range(count):
        if i % 10 == 9:
            log.log_refusal(f"{tag}-{i}", "predict", "petal_length: expected a number", 400, "v1")
        else:
            log.log_answer(f"{tag}-{i}", "v2", "v1", [ROW], [CLASSES[i % 3]], [PROBABILITIES])
        if i % 50 == 0:
            time.sleep(0.01)  # spread over several rotations
    if not log.close():
        raise SystemExit(3)


def write_and_hang(spool: str, count: int, written: Event) -> None:
    """A serving process that writes `count` answers to its spool file, says so, and waits to be killed."""
    log = PredictionLog.from_settings(settings(Path(spool), prediction_log_rotate_seconds=3600), Path(spool))
    for i in range(count):
        log.log_answer(f"hang-{i}", "predict", "v1", [ROW], ["setosa"], [PROBABILITIES])
    assert log.spool is not None
    while log.spool.queue or log.spool._file is None or log.spool._file.size == 0:
        time.sleep(0.01)
    written.set()
    time.sleep(60)


class DiesBeforeDelete(Shipper):
    """A shipper whose process is killed after an upload succeeded, before it deleted the spool file."""

    def _shipped(self, claimed: Path) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


def ship_and_die(spool: str, emulator_host: str, project: str, bucket: str) -> None:
    from core import gcs

    client = gcs.client_for(project, emulator_host)
    DiesBeforeDelete(settings(Path(spool)), client.bucket(bucket), Path(spool), "pod-a").run_once()


def shipped(client: storage.Client, bucket: str) -> dict[str, list[record.Record]]:
    """Every shipped object under PREFIX, decoded."""
    objects = {}
    for blob in client.list_blobs(bucket, prefix=PREFIX):
        data = gzip.decompress(blob.download_as_bytes())
        objects[blob.name] = [record.from_line(line) for line in data.splitlines()]
    return objects


def ids(objects: dict[str, list[record.Record]]) -> list[str]:
    return [r.id for records in objects.values() for r in records]


def overflow_then_close(spool: str) -> None:
    """A serving process (multiprocess metrics mode when spawned with PROMETHEUS_MULTIPROC_DIR): 30 records into a
    queue of 10 before its writer runs."""
    from predictor.predlog.metrics import PredictionLogCounters
    from predictor.predlog.spool import Spool

    log = PredictionLog(Spool(Path(spool), PredictionLogCounters(), queue_size=10, autostart=False))
    for i in range(30):
        log.log_answer(f"mp-{i}", "predict", "v1", [ROW], [0], [PROBABILITIES])
    if not log.close():
        raise SystemExit(3)


def ship_once(spool: str, emulator_host: str, project: str, bucket: str) -> None:
    """The agent: one shipping pass."""
    from core import gcs
    from predictor.predlog.metrics import PredictionLogCounters

    client = gcs.client_for(project, emulator_host)
    shipper = Shipper(settings(Path(spool)), client.bucket(bucket), Path(spool), "pod-a", None, PredictionLogCounters())
    if not shipper.run_once():
        raise SystemExit(3)
