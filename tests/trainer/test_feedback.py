"""The feedback joiner against fake-gcs-server: outcomes, the CSV, the ledger, crashes mid-pass, live accuracy."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import time
from typing import Any

import pytest
from google.cloud import storage
from prometheus_client import CollectorRegistry

from core import liveaccuracy, signing, uuid7
from core.iris import FEATURES, LABEL
from core.store import ModelStore
from tests.trainer.conftest import configured
from tests.trainer.feedback_helpers import (
    FEEDBACK,
    PREDICTIONS,
    answer,
    feedback,
    names,
    read_json,
    refusal,
    ship,
)
from trainer.feedback import accuracy, ledger, records
from trainer.feedback.join import Joiner, Metrics, csv_name
from trainer.settings import TrainerSettings

pytestmark = pytest.mark.integration

DAY = 86400.0
SETOSA, VERSICOLOR, VIRGINICA = (5.1, 3.5, 1.4, 0.2), (5.9, 2.8, 4.3, 1.3), (6.7, 3.1, 5.8, 2.2)
HEADER = ",".join((*FEATURES, LABEL))


@pytest.fixture
def settings(trainer_settings: TrainerSettings) -> TrainerSettings:
    return configured(trainer_settings, feedback_join_wait=60.0, feedback_min_rows=1)  # a CSV per pass with rows


@pytest.fixture
def joiner(settings: TrainerSettings, bucket: storage.Bucket) -> Joiner:
    return Joiner(settings, bucket, Metrics(CollectorRegistry()))


def csv_rows(bucket: storage.Bucket, name: str) -> list[str]:
    blob = bucket.get_blob(name)
    assert blob is not None, name
    lines = blob.download_as_bytes().decode().splitlines()
    assert lines[0] == HEADER
    return lines[1:]


def row(values: tuple[float, ...], label: str) -> str:
    return ",".join([*(repr(v) for v in values), label])


def counted(joiner: Joiner) -> dict[str, float]:
    samples = joiner.metrics.registry.collect()
    return {
        s.labels["outcome"]: s.value
        for m in samples
        for s in m.samples
        if s.name == "trainer_feedback_items_total" and s.value
    }


def test_a_pass_joins_every_outcome_and_writes_one_canonical_csv_and_a_ledger_entry(
    joiner: Joiner, bucket: storage.Bucket
) -> None:
    now = time.time()
    batch, single, refused, odd = uuid7.new(now - 120), uuid7.new(now - 110), uuid7.new(now - 100), uuid7.new(now - 90)
    assert uuid7.issued_at(batch) is not None
    ship(bucket, PREDICTIONS, [
        answer(batch, now - 120, [SETOSA, VIRGINICA], ["setosa", "versicolor"]),
        answer(single, now - 110, [VERSICOLOR], ["versicolor"]),
        refusal(refused, now - 100),
        answer(odd, now - 90, [[5.1, 3.5, 1.4, -0.2], SETOSA], ["setosa", "tulip"]),
    ], now - 120)  # fmt: skip
    source = ship(bucket, FEEDBACK, [
        feedback(batch, 0, "setosa", now - 50),
        feedback(batch, 1, "virginica", now - 49),
        feedback(single, 0, "versicolor", now - 48),
        feedback(single, 0, "setosa", now - 47),  # duplicate: the first label wins
        feedback(batch, 2, "setosa", now - 46),  # the batch had two rows
        feedback(refused, 0, "setosa", now - 45),
        feedback(odd, 0, "setosa", now - 44),  # a negative measurement: no training CSV takes it
        feedback(odd, 1, "setosa", now - 43),  # a predicted class that is not one
        b'{"schema":1,"kind":"feedback","id":"x","row":0,"label":"tulip","time":"2026-12-05T01:30:00.000000Z"}\n',
    ], now - 50)  # fmt: skip
    result = joiner.run_once(now)
    assert result.outcomes == {"joined": 3, "duplicate": 1, "bad_row": 1, "refused": 1, "invalid": 3}
    assert result.csv is not None
    assert names(bucket, "incoming/") == [result.csv]
    assert result.csv.startswith("incoming/feedback-")
    assert len(result.csv) == len("incoming/feedback-.csv") + 22
    assert csv_rows(bucket, result.csv) == [
        row(SETOSA, "setosa"), row(VIRGINICA, "virginica"), row(VERSICOLOR, "versicolor")
    ]  # fmt: skip
    [entry_name] = names(bucket, FEEDBACK + "ledger/")
    entry = read_json(bucket, entry_name)
    assert entry["objects"] == [source]
    assert entry["csv"] == result.csv
    assert entry["pending"] == []
    assert entry["csv_written"]
    assert entry["accuracy_counted"]
    assert [(j["id"], j["row"], j["label"], j["predicted"]) for j in entry["joined"]] == [
        (batch, 0, "setosa", "setosa"), (batch, 1, "virginica", "versicolor"), (single, 0, "versicolor", "versicolor")
    ]  # fmt: skip
    assert counted(joiner) == {"joined": 3, "duplicate": 1, "bad_row": 1, "refused": 1, "invalid": 3}
    again = joiner.run_once(now + 1)  # nothing new: nothing written
    assert again.stamp is None
    assert names(bucket, FEEDBACK + "ledger/") == [entry_name]


def test_a_feedback_waits_for_its_prediction_then_joins_when_it_ships_late(
    joiner: Joiner, bucket: storage.Bucket
) -> None:
    now = time.time()
    request_id = uuid7.new(now - 30)
    ship(bucket, FEEDBACK, [feedback(request_id, 0, "virginica", now - 10)], now - 10)
    first = joiner.run_once(now)
    assert (first.outcomes, len(first.pending), first.csv) == ({}, 1, None)
    assert read_json(bucket, names(bucket, FEEDBACK + "ledger/")[0])["pending"][0]["id"] == request_id
    ship(bucket, PREDICTIONS, [answer(request_id, now - 30, [VIRGINICA], ["virginica"])], now - 30)
    restarted = Joiner(joiner.settings, bucket, Metrics(CollectorRegistry()))  # pending survives a restart
    second = restarted.run_once(now + 5)
    assert (second.outcomes, second.pending) == ({"joined": 1}, [])
    assert second.csv is not None
    assert csv_rows(bucket, second.csv) == [row(VIRGINICA, "virginica")]


def test_a_feedback_whose_prediction_never_ships_is_unknown_after_the_wait(
    joiner: Joiner, bucket: storage.Bucket
) -> None:
    now = time.time()
    ship(bucket, FEEDBACK, [feedback(uuid7.new(now - 30), 0, "setosa", now - 10),
                            feedback("client-id-7", 0, "setosa", now - 10)], now - 10)  # fmt: skip
    assert joiner.run_once(now).outcomes == {}
    assert joiner.run_once(now + 30).outcomes == {}  # still within FEEDBACK_JOIN_WAIT (60 s)
    late = joiner.run_once(now + 61)
    assert (late.outcomes, late.pending, late.csv) == ({"unknown": 2}, [], None)
    assert joiner.run_once(now + 100).stamp is None  # decided once
    assert names(bucket, "incoming/") == []


def test_a_feedback_that_reaches_the_bucket_late_still_waits_for_its_prediction(
    joiner: Joiner, bucket: storage.Bucket
) -> None:
    now = time.time()
    request_id = uuid7.new(now - 1200)  # both spools waited out a 20-minute outage; the feedback's file shipped first
    ship(bucket, FEEDBACK, [feedback(request_id, 0, "versicolor", now - 1100)], now - 1100)
    first = joiner.run_once(now)
    assert (first.outcomes, len(first.pending)) == ({}, 1)  # received 1100 s ago, but in the bucket only now
    ship(bucket, PREDICTIONS, [answer(request_id, now - 1200, [VERSICOLOR], ["versicolor"])], now - 1200)
    assert joiner.run_once(now + 10).outcomes == {"joined": 1}


def test_a_label_for_a_row_joined_in_an_earlier_pass_is_a_duplicate(joiner: Joiner, bucket: storage.Bucket) -> None:
    now = time.time()
    request_id = uuid7.new(now - 60)
    ship(bucket, PREDICTIONS, [answer(request_id, now - 60, [SETOSA], ["setosa"])], now - 60)
    ship(bucket, FEEDBACK, [feedback(request_id, 0, "setosa", now - 20)], now - 20)
    assert joiner.run_once(now).outcomes == {"joined": 1}
    ship(bucket, FEEDBACK, [feedback(request_id, 0, "virginica", now - 5)], now - 5)
    fresh = Joiner(joiner.settings, bucket, Metrics(CollectorRegistry()))
    second = fresh.run_once(now + 1)
    assert (second.outcomes, second.csv) == ({"duplicate": 1}, None)
    [csv] = names(bucket, "incoming/")
    assert csv_rows(bucket, csv) == [row(SETOSA, "setosa")]


def test_a_client_id_is_found_by_scanning_and_an_old_prediction_is_late(
    settings: TrainerSettings, bucket: storage.Bucket
) -> None:
    joiner = Joiner(configured(settings, feedback_max_age=2 * DAY), bucket, Metrics(CollectorRegistry()))
    now = time.time()
    ship(bucket, PREDICTIONS, [answer("order-17", now - 3 * DAY, [SETOSA], ["setosa"])], now - 3 * DAY)
    ship(bucket, PREDICTIONS, [answer("order-18", now - DAY, [VERSICOLOR], ["versicolor"])], now - DAY)
    ship(bucket, FEEDBACK, [feedback("order-17", 0, "setosa", now - 10),
                            feedback("order-18", 0, "versicolor", now - 10)], now - 10)  # fmt: skip
    result = joiner.run_once(now)
    assert result.outcomes == {"late": 1, "joined": 1}
    assert result.csv is not None
    assert csv_rows(bucket, result.csv) == [row(VERSICOLOR, "versicolor")]


def joined_rows(bucket: storage.Bucket) -> list[str]:
    """Every row of every feedback CSV in incoming/ and data/."""
    return [r for name in names(bucket, "incoming/") + names(bucket, "data/feedback-") for r in csv_rows(bucket, name)]


@pytest.mark.parametrize("crash_after", ["entry", "accuracy", "accuracy_mark", "batch_mark", "csv"])
def test_a_pass_that_dies_midway_is_finished_by_the_next_one_without_losing_or_doubling(
    joiner: Joiner, bucket: storage.Bucket, crash_after: str
) -> None:
    """The steps of a pass, cut short after each: store the entry, count the live accuracy, mark it, mark the
    entry's batch, write the batch's CSV (then it would mark it written)."""
    now = time.time()
    first, second = uuid7.new(now - 60), uuid7.new(now - 30)
    ship(bucket, PREDICTIONS, [answer(first, now - 60, [SETOSA], ["setosa"]),
                               answer(second, now - 30, [VIRGINICA], ["virginica"])], now - 60)  # fmt: skip
    ship(bucket, FEEDBACK, [feedback(first, 0, "setosa", now - 20)], now - 20)
    died = joiner.plan(now)
    entry = ledger.Entry(died.stamp or "", died.objects, died.joined, died.outcomes, [], None)
    entry.store(bucket, joiner.prefix, joiner.retry)
    steps = ["entry", "accuracy", "accuracy_mark", "batch_mark", "csv"]
    done = steps[: steps.index(crash_after) + 1]
    if "accuracy" in done:
        accuracy.add(bucket, joiner.prefix, joiner.keyring, entry.joined, now, joiner.retry)
    if "accuracy_mark" in done:
        entry.mark(bucket, joiner.prefix, joiner.retry, accuracy_counted=True)
    if "batch_mark" in done:
        entry.mark(bucket, joiner.prefix, joiner.retry, csv=csv_name(entry.stamp))
    if "csv" in done:
        joiner.write_csv(csv_name(entry.stamp), entry.joined)
    ship(bucket, FEEDBACK, [feedback(second, 0, "virginica", now - 10)], now - 10)  # arrives meanwhile
    restarted = Joiner(joiner.settings, bucket, Metrics(CollectorRegistry()))
    result = restarted.run_once(now + 1)
    assert result.finished == ([] if "accuracy_mark" in done else [entry.stamp])
    assert result.outcomes == {"joined": 1}  # only the new feedback: the first one was decided by the dead pass
    assert sorted(joined_rows(bucket)) == sorted([row(SETOSA, "setosa"), row(VIRGINICA, "virginica")])
    # a batch begun before the death keeps exactly its entries; otherwise the dead pass's rows join the new batch
    assert len(names(bucket, "incoming/")) == (2 if "batch_mark" in done else 1)
    assert restarted.run_once(now + 2).stamp is None
    assert not restarted.run_once(now + 2).finished
    assert all(e.csv_written and e.accuracy_counted for e in restarted.run_once(now + 3).entries)
    document = read_json(bucket, "feedback/accuracy.json")
    expected = 3 if done[-1] == "accuracy" else 2  # a death between the document and its mark counts twice
    assert document["versions"]["20261201T000000000000Z"]["total"] == expected


def test_a_csv_already_ingested_when_its_pass_died_is_not_written_again(joiner: Joiner, bucket: storage.Bucket) -> None:
    now = time.time()
    request_id = uuid7.new(now - 60)
    ship(bucket, PREDICTIONS, [answer(request_id, now - 60, [SETOSA], ["setosa"])], now - 60)
    ship(bucket, FEEDBACK, [feedback(request_id, 0, "setosa", now - 20)], now - 20)
    died = joiner.plan(now)
    entry = ledger.Entry(died.stamp or "", died.objects, died.joined, died.outcomes, [], None)
    entry.store(bucket, joiner.prefix, joiner.retry)
    name = csv_name(entry.stamp)
    entry.mark(bucket, joiner.prefix, joiner.retry, csv=name)
    joiner.write_csv(name, entry.joined)
    bucket.copy_blob(bucket.blob(name), bucket, "data/" + name.removeprefix("incoming/"))  # the ingest function
    bucket.blob(name).delete()
    result = Joiner(joiner.settings, bucket).run_once(now + 1)
    assert (result.finished, result.csv) == ([entry.stamp], name)
    assert names(bucket, "incoming/") == []
    assert joined_rows(bucket) == [row(SETOSA, "setosa")]


def test_feedback_a_few_labels_at_a_time_becomes_one_csv_per_batch(
    settings: TrainerSettings, bucket: storage.Bucket
) -> None:
    """FEEDBACK_MIN_ROWS rows make a batch; fewer wait, counted in the live accuracy at once, until
    FEEDBACK_MAX_DELAY."""
    joiner = Joiner(configured(settings, feedback_min_rows=3, feedback_max_delay=600.0), bucket)
    now = time.time()
    ids = [uuid7.new(now - 100 + i) for i in range(4)]
    ship(bucket, PREDICTIONS, [answer(i, now - 100, [SETOSA], ["setosa"]) for i in ids], now - 100)
    results = []
    for step, request_id in enumerate(ids[:3]):
        ship(bucket, FEEDBACK, [feedback(request_id, 0, "setosa", now - 50 + step)], now - 50 + step)
        results.append(joiner.run_once(now + step))
    assert [r.csv for r in results[:2]] == [None, None]
    assert results[2].csv is not None
    assert csv_rows(bucket, results[2].csv) == [row(SETOSA, "setosa")] * 3  # one CSV, three passes' rows
    document = read_json(bucket, "feedback/accuracy.json")
    assert document["versions"]["20261201T000000000000Z"]["total"] == 3
    ship(bucket, FEEDBACK, [feedback(ids[3], 0, "setosa", now - 40)], now - 40)
    alone = joiner.run_once(now + 10)
    assert alone.csv is None  # one row: waits for more
    assert read_json(bucket, "feedback/accuracy.json")["versions"]["20261201T000000000000Z"]["total"] == 4
    assert joiner.run_once(now + 700).csv is not None  # FEEDBACK_MAX_DELAY passed
    assert len(names(bucket, "incoming/")) == 2


def test_live_accuracy_counts_each_version_with_its_series_and_offline_figures(
    joiner: Joiner, bucket: storage.Bucket, store: ModelStore, fitted_model: Any
) -> None:
    published = store.publish(
        fitted_model, data_fingerprint="f" * 64, row_count=150,
        metrics={"accuracy": 0.97, "f1_macro": 0.97, "accuracy_floor": 0.9},
        evaluation={"set": "x", "rows": 150, "accuracy": 0.96, "recall": {}},
    )  # fmt: skip
    version, other = published.version, "20261101T000000000000Z"
    now = time.time()
    ids = [uuid7.new(now - 90 + i) for i in range(4)]
    ship(bucket, PREDICTIONS, [
        answer(ids[0], now - 90, [SETOSA], ["setosa"], version),
        answer(ids[1], now - 89, [VERSICOLOR], ["versicolor"], version),
        answer(ids[2], now - 88, [VIRGINICA], ["versicolor"], version),
        answer(ids[3], now - 87, [VIRGINICA], ["virginica"], other),
    ], now - 90)  # fmt: skip
    ship(bucket, FEEDBACK, [feedback(ids[i], 0, label, now - 20) for i, label in
                            enumerate(["setosa", "versicolor", "virginica", "virginica"])], now - 20)  # fmt: skip
    joiner.run_once(now)
    document = read_json(bucket, "feedback/accuracy.json")
    assert document["schema"] == 1
    assert set(document["versions"]) == {version, other}
    mine = document["versions"][version]
    assert (mine["correct"], mine["total"]) == (2, 3)
    assert [(p["correct"], p["total"]) for p in mine["series"]] == [(2, 3)]
    assert mine["offline"] == {"accuracy": 0.97, "evaluation": 0.96, "accuracy_floor": 0.9}
    assert document["versions"][other]["offline"] == {}  # no such artifact: no figures
    more = uuid7.new(now - 10)
    ship(bucket, PREDICTIONS, [answer(more, now - 10, [SETOSA], ["setosa"], version)], now - 10)
    ship(bucket, FEEDBACK, [feedback(more, 0, "setosa", now - 5)], now - 5)
    joiner.run_once(now + 1)
    mine = read_json(bucket, "feedback/accuracy.json")["versions"][version]
    assert [(p["correct"], p["total"]) for p in mine["series"]] == [(2, 3), (3, 4)]
    assert read_json(bucket, "feedback/accuracy.json")["versions"][other]["total"] == 1  # unchanged


def test_offline_figures_of_an_artifact_that_does_not_verify_are_left_out(
    bucket: storage.Bucket, store: ModelStore, fitted_model: Any, settings: TrainerSettings
) -> None:
    published = store.publish(fitted_model, data_fingerprint="f" * 64, row_count=150, metrics={"accuracy": 0.97})
    blob = bucket.get_blob(f"models/model-{published.version}.pkl")
    blob.metadata = {**(blob.metadata or {}), "metrics": '{"accuracy": 0.99}'}
    blob.patch()
    assert accuracy.offline(bucket, settings.keyring(), published.version, None) == {}


def test_two_joiners_racing_on_the_document_keep_both_counts(
    bucket: storage.Bucket, settings: TrainerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring, version = settings.keyring(), "20261201T000000000000Z"
    mine = [{"version": version, "label": "setosa", "predicted": "setosa"}] * 3
    theirs = [{"version": version, "label": "setosa", "predicted": "virginica"}] * 2
    read = accuracy.read
    reads = []

    def interleaved(*args: Any) -> tuple[dict[str, Any], int]:
        result = read(*args)
        reads.append(result[1])
        if len(reads) == 1:  # the other joiner writes between this one's read and its write
            accuracy.add(bucket, FEEDBACK, keyring, theirs, time.time(), None)
        return result

    monkeypatch.setattr(accuracy, "read", interleaved)
    accuracy.add(bucket, FEEDBACK, keyring, mine, time.time(), None)
    assert len(reads) == 3
    assert reads[0] == 0
    assert reads[2] != 0
    entry = read_json(bucket, "feedback/accuracy.json")["versions"][version]
    assert (entry["correct"], entry["total"]) == (3, 5)
    assert [(p["correct"], p["total"]) for p in entry["series"]] == [(0, 2), (3, 5)]


def test_the_series_is_thinned_evenly_keeping_the_first_and_the_latest() -> None:
    points = [{"time": str(i), "correct": i, "total": i} for i in range(450)]
    thinned = accuracy.thin(points)
    assert len(thinned) == 200
    assert thinned[0] == points[0]
    assert thinned[-1] == points[-1]
    gaps = {int(b["total"]) - int(a["total"]) for a, b in itertools.pairwise(thinned)}
    assert gaps <= {2, 3}
    assert accuracy.thin(points[:5]) == points[:5]


def test_a_feedback_object_that_is_not_gzip_or_inflates_too_far_is_counted_invalid_and_read_once(
    joiner: Joiner, bucket: storage.Bucket
) -> None:
    now = time.time()
    bucket.blob(f"feedback/date={time.strftime('%Y-%m-%d', time.gmtime(now))}/pod-x.jsonl.gz").upload_from_string(
        b"not gzip"
    )
    assert joiner.run_once(now).outcomes == {"invalid": 1}
    assert joiner.run_once(now + 1).stamp is None
    assert records.inflate(gzip.compress(b"x" * 1000), limit=1000) == b"x" * 1000
    with pytest.raises(ValueError, match="inflates beyond 999 bytes"):
        records.inflate(gzip.compress(b"x" * 1000), limit=999)


def test_a_pass_waits_while_another_joiner_holds_the_lease_and_takes_an_expired_one_over(
    joiner: Joiner, bucket: storage.Bucket
) -> None:
    now = time.time()
    request_id = uuid7.new(now - 60)
    ship(bucket, PREDICTIONS, [answer(request_id, now - 60, [SETOSA], ["setosa"])], now - 60)
    ship(bucket, FEEDBACK, [feedback(request_id, 0, "setosa", now - 20)], now - 20)
    lease = bucket.blob("feedback/ledger/lease.json")
    lease.upload_from_string(json.dumps({"holder": "other", "until": time.time() + 60}))
    busy = joiner.run_once(now)
    assert busy.busy
    assert names(bucket, "incoming/") == []
    assert names(bucket, "feedback/ledger/") == ["feedback/ledger/lease.json"]  # the other joiner's, untouched
    lease.upload_from_string(json.dumps({"holder": "other", "until": time.time() - 1}))  # it died
    result = joiner.run_once(now + 1)
    assert (result.busy, result.outcomes) == (False, {"joined": 1})
    assert bucket.get_blob("feedback/ledger/lease.json") is None  # released
    assert counted_passes(joiner) == {"ok": 1.0, "busy": 1.0, "failed": 0.0}


def counted_passes(joiner: Joiner) -> dict[str, float]:
    return {
        s.labels["status"]: s.value
        for m in joiner.metrics.registry.collect()
        for s in m.samples
        if s.name == "trainer_feedback_passes_total"
    }


def test_the_document_is_signed_and_a_forged_one_is_not_built_on(
    bucket: storage.Bucket, settings: TrainerSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """What a pod verifies with the public key alone; counts someone wrote unsigned are dropped, not carried on."""
    version = "20261201T000000000000Z"
    forged = {"schema": 1, "updated": "2026-12-05T01:00:00.000000Z", "versions": {version: {
        "correct": 900, "total": 900, "series": [{"time": "2026-12-05T01:00:00.000000Z", "correct": 900,
                                                  "total": 900}]}}}  # fmt: skip
    bucket.blob("feedback/accuracy.json").upload_from_string(json.dumps(forged), "application/json")
    rows = [{"version": version, "label": "setosa", "predicted": p} for p in ("setosa", "setosa", "virginica")]
    with caplog.at_level(logging.ERROR, logger="trainer.feedback.accuracy"):
        accuracy.add(bucket, FEEDBACK, settings.keyring(), rows, time.time(), None)
    assert "live accuracy document refused, starting it again: unsigned" in caplog.text
    blob = bucket.get_blob("feedback/accuracy.json")
    assert blob is not None
    data = blob.download_as_bytes()
    public_only = signing.Keyring.of(trusted=[settings.keyring().trusted[blob.metadata["key_id"]]])
    liveaccuracy.verify(data, blob.metadata, public_only)  # raises if it does not verify
    entry = liveaccuracy.parse(data)["versions"][version]
    assert (entry["correct"], entry["total"]) == (2, 3)


def test_the_document_keeps_the_newest_versions_within_what_readers_take() -> None:
    series = [{"time": f"2026-12-05T01:{i // 60:02d}:{i % 60:02d}.000000Z", "correct": i, "total": i}
              for i in range(accuracy.MAX_POINTS)]  # fmt: skip
    versions = {f"2026{m:02d}01T000000{v:06d}Z": {"correct": 1, "total": 1, "series": series, "offline": {}}
                for m in (10, 11) for v in range(50)}  # fmt: skip
    newest = "20261201T000000000000Z"
    document = accuracy.applied({"schema": 1, "versions": versions}, {newest: (1, 1)}, time.time(), {})
    assert sorted(document["versions"]) == sorted([*versions, newest])[-accuracy.KEEP_VERSIONS :]
    assert len(accuracy.encoded(document)) <= liveaccuracy.MAX_BYTES  # the kept ones fit with full series

    oversized = {"schema": 1, "updated": document["updated"], "versions": {**versions, newest: versions[min(versions)]}}
    assert len(json.dumps(oversized)) > liveaccuracy.MAX_BYTES
    body = accuracy.encoded(oversized)
    assert len(body) <= liveaccuracy.MAX_BYTES
    left = sorted(liveaccuracy.parse(body)["versions"])
    assert left == sorted(oversized["versions"])[-len(left) :]  # the oldest went first
    assert newest in left
