"""Feedback records: their line format, a full queue refusing (never dropping), and a real Shipper taking the feedback
spool to feedback/date=.../ on fake-gcs-server, waiting while the bucket is down and losing nothing."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from google.cloud import storage

from devstack import emulators
from devstack.emulators import Service
from predictor.predlog import record
from predictor.predlog.feedback import ACCEPTED, UNAVAILABLE, FeedbackLog, Item
from predictor.predlog.log import PredictionLog
from predictor.predlog.metrics import FeedbackCounters
from predictor.predlog.settings import PredictionLogSettings
from predictor.predlog.shipper import Shipper
from predictor.predlog.spool import READY, Spool
from tests.emulator_fixtures import PROJECT
from tests.predictor.predlog.helpers import settings

PREFIX = "feedback/"
OBJECT = re.compile(r"feedback/date=(\d{4}-\d\d-\d\d)/pod-a-(\d{4})(\d\d)(\d\d)T\d{6}-[0-9a-f]{12}-\d{6}\.jsonl\.gz")
MOMENT = 1_796_434_200.123456  # 2026-12-05T01:30:00.123456Z


def feedback_settings(spool: Path, **more: object) -> PredictionLogSettings:
    return settings(spool, feedback_log_dir=spool / "feedback", feedback_log_prefix=PREFIX, **more)


def labelled(spool: Path, count: int, **more: object) -> FeedbackLog:
    """A serving process's feedback log that accepted `count` items `fb-<i>` (row i % 3)."""
    feedback = FeedbackLog.from_settings(feedback_settings(spool, **more), spool.parent / "handover")
    items = [Item(f"fb-{i}", i % 3, "virginica") for i in range(count)]
    verdicts = feedback.judge(PredictionLog(Spool(spool, FeedbackCounters(), autostart=False)), items, MOMENT)
    assert {v.status for v in verdicts} == {ACCEPTED}
    return feedback


def shipped(client: storage.Client, bucket: str) -> dict[str, list[record.Record]]:
    objects = {}
    for blob in client.list_blobs(bucket, prefix=PREFIX):
        objects[blob.name] = [record.from_line(line) for line in gzip.decompress(blob.download_as_bytes()).splitlines()]
    return objects


def test_a_feedback_line_is_the_shared_format() -> None:
    line = record.to_line(record.Feedback("0193a1b2c3d4e5f6a7b8c9d0e1f2a3b4", 2, "virginica", MOMENT))
    assert line == (
        b'{"schema":1,"kind":"feedback","id":"0193a1b2c3d4e5f6a7b8c9d0e1f2a3b4","row":2,"label":"virginica",'
        b'"time":"2026-12-05T01:30:00.123456Z"}\n'
    )
    back = record.from_line(line)
    assert back == record.Feedback("0193a1b2c3d4e5f6a7b8c9d0e1f2a3b4", 2, "virginica", back.time)
    assert abs(back.time - MOMENT) < 1e-5
    for bad in ({"label": "tulip"}, {"row": "0"}):
        data = {**json.loads(line), **bad}
        with pytest.raises(ValueError, match="out of range"):
            record.from_line(json.dumps(data))


def test_a_full_queue_refuses_items_and_counts_them(tmp_path: Path) -> None:
    counters = FeedbackCounters()
    spool = Spool(tmp_path / "feedback", counters, queue_size=2, autostart=False)
    feedback = FeedbackLog(spool, counters=counters)
    log = PredictionLog(Spool(tmp_path, FeedbackCounters(), autostart=False))
    verdicts = feedback.judge(log, [Item(f"id-{i}", 0, "setosa") for i in range(4)], MOMENT)
    assert [v.status for v in verdicts] == [ACCEPTED, ACCEPTED, UNAVAILABLE, UNAVAILABLE]
    assert all("send it again later" in str(v.reason) for v in verdicts[2:])
    assert (counters.value("accepted"), counters.value("refused"), counters.value("dropped")) == (2, 2, 0)
    assert feedback.close()
    lines = [
        record.from_line(x) for p in (tmp_path / "feedback").glob(f"*{READY}") for x in p.read_bytes().splitlines()
    ]
    assert [r.id for r in lines] == ["id-0", "id-1"]


@pytest.mark.integration
def test_accepted_feedback_reaches_the_feedback_prefix(
    tmp_path: Path, storage_client: storage.Client, bucket_name: str
) -> None:
    spool = tmp_path / "spool"
    assert labelled(spool, 50).close()
    counters = FeedbackCounters()
    shipper = Shipper(
        feedback_settings(spool), storage_client.bucket(bucket_name), spool / "feedback", "pod-a", None, counters,
        prefix=PREFIX, drops=False,
    )  # fmt: skip
    assert shipper.run_once()
    objects = shipped(storage_client, bucket_name)
    assert objects, "shipped"
    for name in objects:
        match = OBJECT.fullmatch(name)
        assert match, name
        assert match.group(1) == "2026-12-05" == "-".join(match.group(2, 3, 4))
    records = [r for rs in objects.values() for r in rs]
    assert all(isinstance(r, record.Feedback) for r in records)
    assert sorted((r.id, r.row, r.label) for r in records if isinstance(r, record.Feedback)) == sorted(
        (f"fb-{i}", i % 3, "virginica") for i in range(50)
    )
    assert list(storage_client.list_blobs(bucket_name, prefix="predictions/")) == []
    assert counters.value("sent") == 50
    assert list((spool / "feedback").iterdir()) == []


@pytest.mark.integration
def test_feedback_waits_while_the_bucket_is_down_and_nothing_is_lost(tmp_path: Path, own_gcs: Service) -> None:
    spool = tmp_path / "spool"
    client = emulators.storage_client(own_gcs.host, PROJECT)
    client.create_bucket("feedback-down")
    small = {"prediction_log_max_spool_bytes": 64 * 1024, "feedback_log_max_spool_bytes": 64 * 1024}
    assert labelled(spool, 2000, **small).close()  # about 250 KB: over both bounds
    folder = spool / "feedback"
    waiting = sorted(p.name for p in folder.iterdir())
    assert sum(p.stat().st_size for p in folder.iterdir()) > 64 * 1024

    own_gcs.stop()
    counters = FeedbackCounters()
    shipper = Shipper(
        feedback_settings(spool, **small), client.bucket("feedback-down"), folder, "pod-a", None, counters,
        prefix=PREFIX, drops=False,
    )  # fmt: skip
    assert not shipper.run_once()
    assert counters.value("failed") > 0
    assert counters.value("dropped") == 0, "feedback is never dropped to keep the spool within its bound"
    assert len(list(folder.iterdir())) == len(waiting)
    refusing = FeedbackLog.from_settings(feedback_settings(spool, **small), spool.parent / "handover")
    assert refusing.spool is not None
    refusing.spool.measure()
    [verdict] = refusing.judge(
        PredictionLog(Spool(spool, FeedbackCounters(), autostart=False)), [Item("new", 0, "setosa")], MOMENT
    )
    assert verdict.status == UNAVAILABLE, "new feedback is refused while the spool is over its bound"
    assert refusing.close()

    restarted = emulators.start_fake_gcs(own_gcs.port, None, tmp_path / "fake-gcs-again.log")
    try:
        client.create_bucket("feedback-down")  # the memory backend forgot it
        assert shipper.run_once()
        records = [r for rs in shipped(client, "feedback-down").values() for r in rs]
    finally:
        restarted.stop()
    assert sorted(r.id for r in records) == sorted(f"fb-{i}" for i in range(2000))
    assert counters.value("sent") == 2000
    assert list(folder.iterdir()) == []
