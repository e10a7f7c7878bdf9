"""train_once in-process against fake-gcs-server: seed, skip, retrain, bad input, quality gate, claims."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

import numpy as np
import pytest
from google.cloud import storage

from core import drift, layout
from core.store import ModelStore
from tests.keys import KEYRING, OTHER
from tests.trainer.conftest import configured, csv_text, gate_only, iris_rows, model_names, put
from trainer import claims, data
from trainer.model import held_out
from trainer.run import train_once
from trainer.settings import TrainerSettings

pytestmark = pytest.mark.integration


def test_first_run_seeds_iris_and_publishes_a_signed_artifact(
    trainer_settings: TrainerSettings, store: ModelStore, bucket: storage.Bucket
) -> None:
    summary = train_once(trainer_settings)
    assert summary["status"] == "published", summary
    assert bucket.get_blob("data/iris.csv") is not None
    assert (summary["files"], summary["rows"]) == (1, 150)
    [ref] = store.list_versions()
    assert ref.name == summary["object"] == layout.model_object(summary["model_version"])
    loaded = store.load(ref)
    lineage = loaded.lineage
    assert lineage.verifies(KEYRING)
    assert lineage.data_fingerprint == summary["data_fingerprint"]
    assert lineage.row_count == 150
    assert lineage.metrics == summary["metrics"]
    assert lineage.metrics["accuracy"] >= trainer_settings.accuracy_floor
    assert (
        lineage.metrics["test_rows"]
        == held_out(np.array([v for v, _ in iris_rows()]), 0.2, trainer_settings.split_salt_value()).sum()
    )
    assert lineage.model_type == "StandardScaler+LogisticRegression"
    assert all(lineage.to_metadata()[k] for k in lineage.to_metadata())
    seed = bucket.get_blob("data/iris.csv")
    assert (lineage.trigger, lineage.data_objects, lineage.data_objects_total) == (
        "manual",
        [f"data/iris.csv#{seed.generation}"],
        1,
    )
    assert lineage.data_to_publish_s == summary["data_to_publish_s"]
    assert 0 <= lineage.data_to_publish_s < 60  # type: ignore[operator]
    reference = drift.Reference.from_lineage(lineage.reference)  # signed along with the rest
    rows = np.array([v for v, _ in iris_rows()])
    assert reference is not None
    assert reference.classes == (50, 50, 50)
    assert reference.histograms["petal_length"] == tuple(drift.histogram(rows[:, 2]))


def test_second_run_skips_without_new_data(trainer_settings: TrainerSettings, bucket: storage.Bucket) -> None:
    first = train_once(trainer_settings)
    second = train_once(trainer_settings)
    assert second == {
        "data_fingerprint": first["data_fingerprint"],
        "files": 1,
        "trigger": "manual",
        "status": "skipped",
        "reason": "no new data",
        "model_version": first["model_version"],
    }
    assert model_names(bucket) == [first["object"]]


def test_a_new_csv_retrains(trainer_settings: TrainerSettings, store: ModelStore, bucket: storage.Bucket) -> None:
    first = train_once(trainer_settings)
    put(bucket, "data/more.csv", csv_text(iris_rows(noise=0.02, seed=1)))
    second = train_once(trainer_settings)
    assert second["status"] == "published", second
    assert second["data_fingerprint"] != first["data_fingerprint"]
    assert second["model_version"] > first["model_version"]
    assert (second["files"], second["rows"]) == (2, 300)
    lineage = store.newest_valid().lineage  # type: ignore[union-attr]
    assert lineage.row_count == 300
    newest, seed = bucket.get_blob("data/more.csv"), bucket.get_blob("data/iris.csv")
    assert lineage.data_objects == [f"data/more.csv#{newest.generation}", f"data/iris.csv#{seed.generation}"]


def test_forced_run_records_its_trigger(trainer_settings: TrainerSettings, store: ModelStore) -> None:
    train_once(trainer_settings)
    forced = train_once(trainer_settings, force=True)
    assert (forced["status"], forced["trigger"]) == ("published", "force")
    assert store.newest_valid().lineage.trigger == "force"  # type: ignore[union-attr]


def test_replacing_a_csv_changes_the_fingerprint(trainer_settings: TrainerSettings, bucket: storage.Bucket) -> None:
    put(bucket, "data/a.csv", csv_text(iris_rows()))
    before = data.fingerprint(data.list_csvs(bucket, None))
    put(bucket, "data/a.csv", csv_text(iris_rows()))  # same bytes, new generation
    after = data.fingerprint(data.list_csvs(bucket, None))
    put(bucket, "data/notes.txt", b"not a csv")
    assert before != after == data.fingerprint(data.list_csvs(bucket, None))


def test_bad_rows_and_bad_files_are_reported_skipped_and_left_in_place(
    trainer_settings: TrainerSettings, store: ModelStore, bucket: storage.Bucket, caplog: pytest.LogCaptureFixture
) -> None:
    good = csv_text(iris_rows())
    with_bad_rows = good + b"abc,3.5,1.4,0.2,setosa\n5.1,3.5,1.4,0.2,rose\n-1,1,1,1,setosa\n"
    objects = {
        "data/iris.csv": with_bad_rows,
        "data/latin1.csv": b"sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,s\xe9tosa\n",
        "data/no-label.csv": b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n",
        "data/empty.csv": b"",
    }
    for name, content in objects.items():
        put(bucket, name, content)
    with caplog.at_level(logging.WARNING, logger="trainer.data"):
        summary = train_once(trainer_settings)
    assert summary["status"] == "published", summary
    assert summary["rows"] == 150
    reports = summary["file_reports"]
    assert reports["data/iris.csv"] == {"rows_valid": 150, "rows_invalid": 3, "fatal": None, "rows_used": 150}
    assert reports["data/latin1.csv"]["fatal"].startswith("not UTF-8")
    assert reports["data/no-label.csv"]["fatal"].startswith("missing columns: species")
    assert reports["data/empty.csv"]["fatal"] == "empty file"
    assert {r.file for r in caplog.records} == set(objects)  # type: ignore[attr-defined]
    for name, content in objects.items():
        assert bucket.blob(name).download_as_bytes() == content
    assert store.newest_valid().lineage.row_count == 150  # type: ignore[union-attr]


def test_a_fatal_file_contributes_no_rows_even_after_valid_ones(
    trainer_settings: TrainerSettings, bucket: storage.Bucket
) -> None:
    put(bucket, "data/iris.csv", csv_text(iris_rows()))
    put(bucket, "data/tail-broken.csv", csv_text(iris_rows()) + b"5.1,3.5,1.4,0.2,\xff\n")
    summary = train_once(trainer_settings)
    assert summary["rows"] == 150
    assert summary["file_reports"]["data/tail-broken.csv"]["fatal"].startswith("not UTF-8")


def test_accuracy_floor_rejects_and_publishes_nothing(
    trainer_settings: TrainerSettings, bucket: storage.Bucket
) -> None:
    put(bucket, "data/noisy.csv", csv_text(iris_rows(noise=0.3, seed=5)))
    summary = train_once(configured(trainer_settings, accuracy_floor=1.0))
    assert summary["status"] == "rejected"
    assert summary["reason"].startswith("accuracy ")
    assert "below floor 1.0" in summary["reason"]
    assert model_names(bucket) == []


def test_too_few_rows_of_a_species_is_rejected(trainer_settings: TrainerSettings, bucket: storage.Bucket) -> None:
    put(bucket, "data/setosa.csv", csv_text(r for r in iris_rows() if r[1] == "setosa"))
    summary = train_once(trainer_settings)
    assert summary["status"] == "rejected"
    assert "every species needs training and held-out rows" in summary["reason"]
    assert model_names(bucket) == []


def jittered(
    rows: list[tuple[Sequence[float], str]], seed: int, label: str | None = None
) -> list[tuple[Sequence[float], str]]:
    """Plausible new flowers: `rows` with small noise (0.05 cm), optionally all given `label`."""
    rng = np.random.default_rng(seed)
    return [
        (tuple(round(max(0.1, v + rng.normal(0, 0.05)), 2) for v in values), label or name) for values, name in rows
    ]


def test_plausible_new_rows_are_not_rejected_against_the_current_model(
    trainer_settings: TrainerSettings, bucket: storage.Bucket
) -> None:
    first = train_once(trainer_settings)
    assert first["status"] == "published", first
    versicolor = [r for r in iris_rows() if r[1] == "versicolor"][:20]
    put(bucket, "data/more-versicolor.csv", csv_text(jittered(versicolor, seed=1)))
    summary = train_once(trainer_settings)
    assert summary["status"] == "published", summary
    metrics = summary["metrics"]
    assert metrics["accuracy"] >= metrics["baseline_accuracy"] - 1 / metrics["test_rows"]  # one held-out row at most


def test_a_mislabelled_batch_is_rejected_by_the_gate(trainer_settings: TrainerSettings, bucket: storage.Bucket) -> None:
    first = train_once(trainer_settings)
    assert first["status"] == "published", first
    versicolor = [r for r in iris_rows() if r[1] == "versicolor"]
    put(bucket, "data/mislabelled.csv", csv_text(jittered(versicolor, 0, label="setosa")))
    summary = train_once(gate_only(trainer_settings))
    assert summary["status"] == "rejected", summary
    assert model_names(bucket) == [first["object"]]


def test_a_candidate_worse_on_rows_neither_model_saw_is_rejected(
    trainer_settings: TrainerSettings, bucket: storage.Bucket
) -> None:
    first = train_once(trainer_settings)
    assert first["status"] == "published", first
    versicolor = [r for r in iris_rows() if r[1] == "versicolor"]
    batch = [row for seed in range(3) for row in jittered(versicolor, seed, label="setosa")]
    train_side = ~held_out(np.array([values for values, _ in batch]), 0.2, trainer_settings.split_salt_value())
    put(bucket, "data/mislabelled.csv", csv_text(row for row, keep in zip(batch, train_side, strict=True) if keep))
    summary = train_once(gate_only(trainer_settings, accuracy_floor=0.0, max_upload_share=1.0))
    assert summary["status"] == "rejected", summary
    assert "regresses from current" in summary["reason"]
    assert summary["metrics"]["baseline_accuracy"] > summary["metrics"]["accuracy"] + 0.02
    assert model_names(bucket) == [first["object"]]


def test_a_row_keeps_its_side_of_the_split_as_data_grows() -> None:
    x = np.array([values for values, _ in iris_rows()])
    grown = np.vstack([x, np.random.default_rng(0).uniform(0.1, 8, (1000, 4)), x[:10]])
    small, large = held_out(x, 0.2, 42), held_out(grown, 0.2, 42)
    np.testing.assert_array_equal(small, large[: len(x)])
    np.testing.assert_array_equal(large[-10:], small[:10])  # identical measurements, same side
    assert 0.15 < large.mean() < 0.25
    assert not np.array_equal(small, held_out(x, 0.2, 43))


@pytest.mark.parametrize(
    "metadata",
    [
        {"sha256": "0" * 64, "signature": "é" * 64},
        {"sha256": "0" * 64, "signature": "0" * 64, "metrics": "[" * 100_000},
    ],
    ids=["non-ascii-signature", "deeply-nested-json"],
)
def test_a_malformed_artifact_is_skipped_never_fatal(
    trainer_settings: TrainerSettings, bucket: storage.Bucket, metadata: dict[str, str]
) -> None:
    blob = bucket.blob(layout.model_object("29991231T235959999999Z"))
    blob.metadata = metadata
    blob.upload_from_string(b"x")
    for force in (False, True):
        assert train_once(trainer_settings, force=force)["status"] == "published"


def test_a_patched_data_fingerprint_does_not_make_the_trainer_skip_new_data(
    trainer_settings: TrainerSettings, bucket: storage.Bucket
) -> None:
    first = train_once(trainer_settings)
    put(bucket, "data/more.csv", csv_text(iris_rows(seed=2)))
    blob = bucket.get_blob(first["object"])
    blob.metadata = {"data_fingerprint": data.fingerprint(data.list_csvs(bucket, None))}
    blob.patch()
    assert train_once(trainer_settings)["status"] == "published"


def test_a_file_over_max_csv_bytes_is_skipped_with_a_report(
    trainer_settings: TrainerSettings, bucket: storage.Bucket
) -> None:
    put(bucket, "data/iris.csv", csv_text(iris_rows()))
    put(bucket, "data/too-big.csv", csv_text(iris_rows(copies=2)))
    summary = train_once(configured(trainer_settings, max_csv_bytes=len(csv_text(iris_rows())) + 10))
    assert summary["status"] == "published", summary
    assert summary["rows"] == 150
    assert summary["file_reports"]["data/too-big.csv"]["fatal"].startswith("file exceeds ")


def test_force_retrains_the_same_data(trainer_settings: TrainerSettings, store: ModelStore) -> None:
    first = train_once(trainer_settings)
    forced = train_once(trainer_settings, force=True)
    assert forced["status"] == "published"
    assert forced["data_fingerprint"] == first["data_fingerprint"]
    assert [r.version for r in store.list_versions()] == [first["model_version"], forced["model_version"]]


def test_superseded_artifacts_get_a_custom_time_and_the_newest_none(
    trainer_settings: TrainerSettings, store: ModelStore, bucket: storage.Bucket
) -> None:
    first = train_once(trainer_settings)
    second = train_once(trainer_settings, force=True)
    custom_times = {b.name: b.custom_time for b in bucket.list_blobs(prefix=layout.MODEL_PREFIX)}
    assert custom_times[layout.model_object(first["model_version"])] is not None
    assert custom_times[layout.model_object(second["model_version"])] is None


def test_an_invalid_newest_artifact_does_not_cause_a_skip(
    trainer_settings: TrainerSettings, store: ModelStore, bucket: storage.Bucket
) -> None:
    first = train_once(trainer_settings)
    forged = ModelStore(store.bucket, OTHER, store.retry)
    forged.publish_bytes(b"x", model_type="x", data_fingerprint=first["data_fingerprint"], row_count=1, metrics={})
    assert train_once(trainer_settings)["status"] == "skipped"  # the valid one already has this data
    put(bucket, "data/more.csv", csv_text(iris_rows(seed=2)))
    fingerprint = data.fingerprint(data.list_csvs(bucket, None))
    forged.publish_bytes(b"x", model_type="x", data_fingerprint=fingerprint, row_count=1, metrics={})
    assert train_once(trainer_settings)["status"] == "published"


def _claim(bucket: storage.Bucket, fingerprint: str, state: str, age: float) -> None:
    body = json.dumps({"state": state, "at": time.time() - age})
    bucket.blob(f"{layout.CLAIMS}{fingerprint}.json").upload_from_string(body, "application/json")


@pytest.mark.parametrize(
    ("state", "age", "status"),
    [
        ("training", 10, "busy"),
        ("published", 10**6, "skipped"),
        ("rejected", 10, "skipped"),
        ("training", 10**6, "published"),
        ("failed", 10, "published"),
    ],
)
def test_claims_decide_who_trains(
    trainer_settings: TrainerSettings, bucket: storage.Bucket, state: str, age: float, status: str
) -> None:
    put(bucket, "data/iris.csv", csv_text(iris_rows()))
    fingerprint = data.fingerprint(data.list_csvs(bucket, None))
    _claim(bucket, fingerprint, state, age)
    summary = train_once(trainer_settings)
    assert summary["status"] == status, summary
    if status in ("skipped", "busy"):
        assert summary["reason"].startswith("data already claimed by another run")
        assert model_names(bucket) == []
    else:
        claim = json.loads(bucket.blob(f"{layout.CLAIMS}{fingerprint}.json").download_as_bytes())
        assert (claim["state"], claim["version"]) == ("published", summary["model_version"])


def test_a_live_run_renews_its_claim_and_a_dead_one_goes_stale(bucket: storage.Bucket) -> None:
    holder = claims.acquire(bucket, "sha256:renewed", stale_after=0.6, retry=None)
    assert isinstance(holder, claims.Claim)
    with holder.kept_alive(every=0.15, retry=None):
        time.sleep(1.2)  # twice the stale age: only the renewals keep it live
        refused = claims.acquire(bucket, "sha256:renewed", stale_after=0.6, retry=None)
        assert isinstance(refused, claims.Refused)
        assert refused.busy, refused
    time.sleep(0.8)  # no renewal any more, as after a crash
    taker = claims.acquire(bucket, "sha256:renewed", stale_after=0.6, retry=None)
    assert isinstance(taker, claims.Claim)
    assert holder.renew(retry=None) is False  # the old holder learns it lost the claim
