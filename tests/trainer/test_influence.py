"""Per-file influence: fair byte and row shares, the upload share cap, excluded files and their reports, the salt."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from google.cloud import storage

from core import settings as core_settings
from core.store import ModelStore
from tests import keys
from tests.trainer.conftest import csv_text, iris_rows, model_names, put, run_trainer, trainer_env
from tests.trainer.test_run import configured, jittered
from trainer import influence
from trainer.data import _Budget
from trainer.model import held_out
from trainer.run import train_once
from trainer.settings import TrainerSettings

Rows = list[tuple[Sequence[float], str]]


def lookalikes(count: int, seed: int) -> Rows:
    """Versicolor flowers with petal width >= 1.4, jittered by 0.02 cm, labelled virginica."""
    pool = [r for r in iris_rows() if r[1] == "versicolor" and r[0][3] >= 1.4]
    rng = np.random.default_rng(seed)
    picks = [pool[i] for i in rng.integers(0, len(pool), count)]
    return [(tuple(round(v + rng.normal(0, 0.02), 2) for v in values), "virginica") for values, _ in picks]


def plausible(count: int, seed: int) -> Rows:
    rng = np.random.default_rng(seed)
    rows = iris_rows()
    return jittered([rows[i] for i in rng.integers(0, len(rows), count)], seed)


# Units: the shares and the budgeted reader


def test_fair_cap_keeps_small_files_whole_and_splits_the_rest_evenly() -> None:
    assert influence.fair_cap([100, 1000, 1000], 900) == 400
    assert influence.fair_cap([100, 1000, 1000], 5000) == 1000
    assert influence.fair_cap([300, 300, 300], 600) == 200
    assert influence.fair_cap([], 10) == 0


def test_an_upload_holds_at_most_its_share_of_the_rows_it_joins() -> None:
    assert influence.share_caps([150, 10_000, 20], 0.5) == [150, 150, 20]
    assert influence.share_caps([150, 10_000], 0.25) == [150, 50]
    assert influence.share_caps([150, 10_000], 1.0) == [150, 10_000]


def test_thinning_spreads_the_kept_rows_over_the_whole_file() -> None:
    kept = influence.thin(1000, 10)
    assert len(set(kept.tolist())) == 10
    assert kept[0] == 0
    assert kept[-1] == 999
    assert influence.thin(5, 10).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("budget", "expected", "cut"),
    [
        (3, b"a,1\n", True),
        (5, b"a,1\nbb,2\n", True),
        (100, b"a,1\nbb,2\nccc,3\n", False),
        (14, b"a,1\nbb,2\nccc,3\n", False),
    ],
)
def test_the_budgeted_reader_stops_at_the_end_of_a_line(budget: int, expected: bytes, cut: bool) -> None:
    reader = _Budget(io.BytesIO(b"a,1\nbb,2\nccc,3\n"), budget)
    assert reader.read() == expected
    assert (reader.cut, reader.read_bytes) == (cut, len(expected))


# The salt


def test_the_split_salt_is_read_from_its_secret_file(tmp_path: Path) -> None:
    salt = tmp_path / "salt"
    salt.write_text("one secret\n")
    base = keys.settings() | {"split_salt_file": salt}
    first = TrainerSettings(**base).split_salt_value()
    salt.write_text("another secret")
    second = TrainerSettings(**base).split_salt_value()
    assert first != second != 42
    x = np.array([values for values, _ in iris_rows()])
    assert not np.array_equal(held_out(x, 0.2, first), held_out(x, 0.2, second))
    assert TrainerSettings(**keys.settings() | {"split_salt": "one secret"}).split_salt_value() == first


def test_without_a_salt_the_trainer_refuses_to_start_unless_told_to_use_the_public_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in TrainerSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in keys.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SPLIT_SALT_FILE")
    with pytest.raises(SystemExit) as info:
        core_settings.load(TrainerSettings)
    assert info.value.code == 2
    assert "SPLIT_SALT or SPLIT_SALT_FILE must be set" in capsys.readouterr().err
    monkeypatch.setenv("SPLIT_SALT_PUBLIC", "true")
    assert core_settings.load(TrainerSettings).split_salt_value() == 42
    monkeypatch.setenv("SPLIT_SALT_FILE", "/nonexistent/salt")
    with pytest.raises(SystemExit):
        core_settings.load(TrainerSettings)


# On the emulator


@pytest.mark.integration
def test_the_trainer_process_without_a_salt_exits_2(common_env: dict[str, str]) -> None:
    env = trainer_env(common_env)
    env.pop("SPLIT_SALT_FILE")
    run = run_trainer(env)
    assert run.returncode == 2, run.stderr
    assert "SPLIT_SALT" in run.stderr


@pytest.mark.integration
def test_one_upload_holds_at_most_its_share_of_the_rows(
    trainer_settings: TrainerSettings, bucket: storage.Bucket
) -> None:
    put(bucket, "data/iris.csv", csv_text(iris_rows()))
    put(bucket, "data/big.csv", csv_text(plausible(600, seed=3)))
    summary = train_once(trainer_settings)
    assert summary["status"] == "published", summary
    assert summary["rows"] == 300
    assert summary["thinned"] == {"data/big.csv": {"rows_read": 600, "rows_used": 150}}
    assert summary["file_reports"]["data/big.csv"]["rows_used"] == 150
    assert summary["file_reports"]["data/iris.csv"]["rows_used"] == 150


@pytest.mark.integration
def test_the_row_cap_is_shared_fairly_not_newest_first(
    trainer_settings: TrainerSettings, store: ModelStore, bucket: storage.Bucket
) -> None:
    put(bucket, "data/oldest.csv", csv_text(iris_rows()))
    put(bucket, "data/newer.csv", csv_text(iris_rows(seed=2, copies=2)))
    put(bucket, "data/newest.csv", csv_text(iris_rows(seed=3, copies=4)))
    summary = train_once(configured(trainer_settings, max_training_rows=400, max_upload_share=1.0))
    assert summary["status"] == "published", summary
    used = {name: report["rows_used"] for name, report in summary["file_reports"].items()}
    assert set(used) == {"data/oldest.csv", "data/newer.csv", "data/newest.csv"}
    assert sorted(used.values()) == [133, 133, 134]  # 400 rows in even shares, the oldest file's included
    assert summary["rows"] == 400
    lineage = store.newest_valid().lineage  # type: ignore[union-attr]
    assert lineage.row_count == 400
    assert lineage.data_objects_total == 3


@pytest.mark.integration
def test_a_flipped_label_upload_is_excluded_reported_and_kept(
    trainer_settings: TrainerSettings, bucket: storage.Bucket, caplog: pytest.LogCaptureFixture
) -> None:
    first = train_once(trainer_settings)
    assert first["status"] == "published", first
    versicolor = next(r for r in iris_rows() if r[1] == "versicolor")
    content = csv_text(lookalikes(250, seed=0) + [versicolor] * 30)
    put(bucket, "data/poison.csv", content)
    with caplog.at_level(logging.WARNING, logger="trainer.influence"):
        summary = train_once(trainer_settings)
    assert summary["status"] == "skipped", summary
    assert summary["reason"] == "nothing new to learn: the new data files were excluded"
    assert (summary["excluded_files"], summary["excluded_rows"]) == (1, 280)
    excluded = summary["excluded"]["data/poison.csv"]
    assert excluded["report"] == "reports/data/poison.csv.excluded.json"
    assert any("serving model gives another species" in reason for reason in excluded["reasons"]), excluded
    assert summary["file_reports"]["data/poison.csv"]["rows_used"] == 0
    report = json.loads(bucket.blob(excluded["report"]).download_as_bytes())
    assert report["object"] == "data/poison.csv"
    assert report["generation"] == bucket.get_blob("data/poison.csv").generation
    assert report["serving_model"] == first["model_version"]
    assert report["reasons"] == excluded["reasons"]
    assert report["contradicted_rows"] > 0.1 * 280
    assert [r.levelname for r in caplog.records if "data/poison.csv" in r.getMessage()] == ["WARNING"]
    assert bucket.blob("data/poison.csv").download_as_bytes() == content  # kept in data/, never used
    assert model_names(bucket) == [first["object"]]


@pytest.mark.integration
def test_an_upload_whose_species_mix_departs_sharply_is_excluded(
    trainer_settings: TrainerSettings, bucket: storage.Bucket
) -> None:
    first = train_once(trainer_settings)
    setosa = [r for r in iris_rows() if r[1] == "setosa"]
    put(bucket, "data/only-setosa.csv", csv_text(jittered(setosa, seed=4) + jittered(setosa[:10], seed=5)))
    summary = train_once(trainer_settings)
    assert summary["status"] == "skipped", summary
    [reason] = summary["excluded"]["data/only-setosa.csv"]["reasons"]
    assert reason.startswith("its species mix is 0.67 (total variation) from the older files'")
    report = json.loads(bucket.blob("reports/data/only-setosa.csv.excluded.json").download_as_bytes())
    assert (report["contradicted_rows"], report["species"]) == (0, {"setosa": 60, "versicolor": 0, "virginica": 0})
    assert model_names(bucket) == [first["object"]]


@pytest.mark.integration
def test_good_uploads_are_used(trainer_settings: TrainerSettings, store: ModelStore, bucket: storage.Bucket) -> None:
    train_once(trainer_settings)
    for k in range(3):
        put(bucket, f"data/more-{k}.csv", csv_text(plausible(40, seed=10 + k)))
        summary = train_once(trainer_settings)
        assert summary["status"] == "published", summary
        assert (summary["excluded_files"], summary["excluded"], summary["thinned"]) == (0, {}, {})
        assert summary["rows"] == 150 + 40 * (k + 1)
    assert list(bucket.list_blobs(prefix="reports/")) == []
    assert store.newest_valid().lineage.data_objects_total == 4  # type: ignore[union-attr]


@pytest.mark.integration
def test_a_run_reads_at_most_its_byte_budget_shared_fairly(
    trainer_settings: TrainerSettings, bucket: storage.Bucket
) -> None:
    small, large = csv_text(iris_rows()), csv_text(plausible(1500, seed=6))
    put(bucket, "data/iris.csv", small)
    put(bucket, "data/large.csv", large)
    budget = 2 * len(small) + 3000
    summary = train_once(configured(trainer_settings, max_run_bytes=budget, max_upload_share=1.0))
    assert summary["status"] == "published", summary
    assert (summary["byte_budget"], summary["byte_budget_reached"]) == (budget, True)
    assert summary["files_cut_by_byte_budget"] == ["data/large.csv"]
    assert budget - 40 <= summary["bytes_read"] <= budget + 40  # whole lines: at most one line past it
    reports = summary["file_reports"]
    assert reports["data/iris.csv"]["rows_used"] == 150
    assert "cut" not in reports["data/iris.csv"]
    large_rows = reports["data/large.csv"]["rows_valid"]
    assert 0 < large_rows < 1500
    assert reports["data/large.csv"]["rows_invalid"] == 0
    assert reports["data/large.csv"]["cut"].startswith(
        f"read {summary['bytes_read'] - len(small)} of {len(large)} bytes"
    )
    assert summary["rows"] == 150 + large_rows
