"""The spool on local disk: never blocking, bounded, flushed on close, rotated, and a dead writer's file recovered."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from predictor.predlog import record
from predictor.predlog.log import PredictionLog, in_sample
from predictor.predlog.metrics import PredictionLogCounters
from predictor.predlog.record import Answer
from predictor.predlog.settings import PredictionLogSettings
from predictor.predlog.spool import PART, READY, SHIPPING, Spool, enforce_bound, promote_orphans, ready_files
from tests.predictor.predlog import helpers
from tests.predictor.predlog.helpers import PROBABILITIES, ROW


def spooled(directory: Path, suffix: str = READY) -> list[record.Record]:
    return [
        record.from_line(line)
        for path in sorted(directory.glob(f"*{suffix}"))
        for line in path.read_bytes().splitlines()
    ]


def answer(request_id: str, moment: float = 1796421907.0) -> Answer:
    return Answer(request_id, moment, "predict", "v1", [ROW], ["setosa"], [PROBABILITIES])


def test_a_full_queue_drops_and_counts_without_waiting_for_the_writer(tmp_path: Path) -> None:
    counters = PredictionLogCounters()
    spool = Spool(tmp_path, counters, queue_size=100, autostart=False)
    log = PredictionLog(spool)
    for i in range(1000):
        log.log_answer(f"id-{i}", "predict", "v1", [ROW], ["setosa"], [PROBABILITIES])
    assert spool.thread is None  # nobody drained: every call above returned on its own
    assert len(spool.queue) == 100
    assert counters.value("dropped") == 900
    assert log.close()
    assert [r.id for r in spooled(tmp_path)] == [f"id-{i}" for i in range(100)]


def test_close_writes_everything_accepted(tmp_path: Path) -> None:
    counters = PredictionLogCounters()
    log = PredictionLog(Spool(tmp_path, counters, queue_size=100_000, rotate_bytes=4096))
    for i in range(5000):
        log.log_answer(f"id-{i}", "predict", "v1", [ROW], ["setosa"], [PROBABILITIES])
    log.log_refusal("refused", "api", "no model loaded", 503)
    assert log.close()
    records = spooled(tmp_path)
    assert [r.id for r in records] == [f"id-{i}" for i in range(5000)] + ["refused"]
    assert counters.value("dropped") == 0
    assert not list(tmp_path.glob(f"*{PART}")), "close leaves no open file"
    files = list(tmp_path.glob(f"*{READY}"))
    assert len(files) > 1, "rotated by size"
    assert all(f.stat().st_size < 4096 + 400 for f in files)
    log.log_answer("late", "predict", "v1", [ROW], ["setosa"], [PROBABILITIES])  # after close: counted, not kept
    assert counters.value("dropped") == 1


def test_an_unwritable_spool_counts_drops_and_never_fails_a_request(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "spool"
    not_a_folder.write_text("a file where the folder should be")
    counters = PredictionLogCounters()
    log = PredictionLog(Spool(not_a_folder, counters))
    for i in range(50):
        log.log_answer(f"id-{i}", "predict", "v1", [ROW], ["setosa"], [PROBABILITIES])
    assert log.close()
    assert counters.value("dropped") == 50


def test_a_file_never_spans_two_utc_days(tmp_path: Path) -> None:
    spool = Spool(tmp_path, PredictionLogCounters(), autostart=False)
    before, after = 1796428799.5, 1796428800.5  # 2026-12-04T23:59:59.5Z, 2026-12-05T00:00:00.5Z
    spool.put(answer("before", before))
    spool.put(answer("after", after))
    spool.close()
    names = sorted(p.name for p in tmp_path.glob(f"*{READY}"))
    assert [n[:8] for n in names] == ["20261204", "20261205"]
    assert [[r.id for r in spooled_file(tmp_path / n)] for n in names] == [["before"], ["after"]]


def spooled_file(path: Path) -> list[record.Record]:
    return [record.from_line(line) for line in path.read_bytes().splitlines()]


def test_a_killed_writers_file_is_made_ready_and_a_live_writers_is_not(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    written = context.Event()
    writer = context.Process(target=helpers.write_and_hang, args=(str(tmp_path), 20, written))
    writer.start()
    try:
        assert written.wait(30), "the writer never wrote"
        counters = PredictionLogCounters()
        assert promote_orphans(tmp_path, counters) == 0, "its writer lives and holds the lock"
        assert len(list(tmp_path.glob(f"*{PART}"))) == 1
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(10)
        assert promote_orphans(tmp_path, counters) == 1
    finally:
        writer.kill()
        writer.join()
    assert [r.id for r in spooled(tmp_path)] == [f"hang-{i}" for i in range(20)]
    assert counters.value("dropped") == 0


def test_a_partial_last_line_of_a_dead_writer_is_cut_and_counted(tmp_path: Path) -> None:
    orphan = tmp_path / f"20261204T220000-deadbeef0000-000001{PART}"
    orphan.write_bytes(record.to_line(answer("whole")) + record.to_line(answer("cut"))[:40])
    counters = PredictionLogCounters()
    assert promote_orphans(tmp_path, counters) == 1
    assert [r.id for r in spooled(tmp_path)] == ["whole"]
    assert counters.value("dropped") == 1


def test_the_oldest_ready_files_are_dropped_beyond_the_bound(tmp_path: Path) -> None:
    line = record.to_line(answer("x"))
    for minute in range(5):
        (tmp_path / f"20261204T22{minute:02d}00-feed00000000-000001{READY}").write_bytes(line * 10)
    counters = PredictionLogCounters()
    assert enforce_bound(tmp_path, 3 * len(line) * 10, counters) == 20
    assert sorted(p.name[:13] for p in tmp_path.glob(f"*{READY}")) == [
        "20261204T2202",
        "20261204T2203",
        "20261204T2204",
    ]
    assert counters.value("dropped") == 20


def test_a_forked_child_writes_its_own_files_and_leaves_the_parents_alone(tmp_path: Path) -> None:
    counters = PredictionLogCounters()
    spool = Spool(tmp_path, counters, rotate_seconds=3600)
    spool.put(answer("parent-1"))
    while spool.queue or spool._file is None:  # the parent's file is open and locked
        time.sleep(0.01)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        try:
            spool.put(answer("child-1"))
            os._exit(0 if spool.close() else 1)
        finally:
            os._exit(2)
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
    assert promote_orphans(tmp_path, counters) == 0, "the parent still holds its file's lock"
    spool.put(answer("parent-2"))
    assert spool.close()
    files = sorted(tmp_path.glob(f"*{READY}"), key=lambda p: [r.id for r in spooled_file(p)])
    assert [[r.id for r in spooled_file(path)] for path in files] == [["child-1"], ["parent-1", "parent-2"]]
    assert counters.value("dropped") == 0


def test_files_that_are_not_spool_files_are_left_alone(tmp_path: Path) -> None:
    strangers = [tmp_path / "notes.jsonl", tmp_path / "backup.part", tmp_path / "20261204T220000-x-1.jsonl"]
    for path in strangers:
        path.write_bytes(record.to_line(answer("stranger")))
    assert ready_files(tmp_path) == []
    assert promote_orphans(tmp_path, PredictionLogCounters()) == 0
    assert enforce_bound(tmp_path, 1, PredictionLogCounters()) == 0
    assert all(path.exists() for path in strangers)


def test_a_file_being_shipped_is_never_dropped(tmp_path: Path) -> None:
    line = record.to_line(answer("x"))
    shipping = tmp_path / f"20261204T220000-feed00000000-000001{SHIPPING}"
    shipping.write_bytes(line * 10)
    newer = tmp_path / f"20261204T220100-feed00000000-000002{READY}"
    newer.write_bytes(line * 10)
    assert enforce_bound(tmp_path, 1, PredictionLogCounters()) == 10
    assert shipping.exists()
    assert not newer.exists()


def test_sampling_keeps_about_the_rate_and_decides_by_id(tmp_path: Path) -> None:
    spool = Spool(tmp_path, PredictionLogCounters(), queue_size=100_000, autostart=False)
    log = PredictionLog(spool, sample_rate=0.5)
    requests = [uuid.uuid4().hex for _ in range(4000)]
    for request_id in requests:
        log.log_answer(request_id, "predict", "v1", [ROW], ["setosa"], [PROBABILITIES])
        log.log_refusal(request_id, "predict", "again, same id", 400)
    kept = [r.id for r in spool.queue]
    # binomial(4000, 0.5): standard deviation 31.6; 5 of them either side fails about once in 3.5 million runs
    assert 2000 - 158 <= len(kept) / 2 <= 2000 + 158
    assert kept[::2] == kept[1::2], "an id is in or out for every record"
    assert set(kept) == {i for i in requests if in_sample(i, 0.5)} == {i for i in requests if log.sampled(i)}


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_sampling_extremes(tmp_path: Path, rate: float) -> None:
    assert in_sample("anything", rate) is (rate == 1.0)


@pytest.mark.parametrize(
    "overrides", [{"prediction_log_enabled": False}, {"prediction_log_sample_rate": 0.0}], ids=["disabled", "rate-0"]
)
def test_a_disabled_log_records_nothing(tmp_path: Path, overrides: dict[str, object]) -> None:
    log = PredictionLog.from_settings(helpers.settings(tmp_path / "spool", **overrides), tmp_path / "handover")
    assert not log.enabled
    log.log_answer("id", "predict", "v1", [ROW], ["setosa"], [PROBABILITIES])
    log.log_refusal("id", "predict", "bad", 400)
    assert log.close()
    assert not (tmp_path / "spool").exists()


def test_by_default_the_spool_is_beside_the_handover(tmp_path: Path) -> None:
    settings = PredictionLogSettings.model_validate({})
    log = PredictionLog.from_settings(settings, tmp_path / "handover")
    log.log_answer("id", "predict", "v1", [ROW], ["setosa"], [PROBABILITIES])
    assert log.close()
    assert [r.id for r in spooled(tmp_path / "handover-predictions")] == ["id"]
