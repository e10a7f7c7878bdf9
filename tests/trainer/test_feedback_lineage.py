"""Feedback in the lineage (`feedback_rows`, the gate's `accuracy_floor`), the joiner's CSV through the ingest function,
the one-shot command and the watcher's timer."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import storage
from prometheus_client import CollectorRegistry

from core import uuid7
from core.errors import ArtifactRejected
from core.iris import CLASSES, FEATURES
from core.lineage import Lineage
from core.states import RunOutcome
from core.store import ModelStore
from functions.ingest import ingest
from functions.settings import IngestSettings
from tests import keys
from tests.trainer.conftest import ROOT, configured, csv_text, iris_rows, put, trainer_env
from tests.trainer.feedback_helpers import FEEDBACK, PREDICTIONS, answer, feedback, names, ship
from trainer.feedback.join import Joiner, Metrics
from trainer.run import train_once
from trainer.settings import TrainerSettings
from trainer.watch import Watcher

pytestmark = pytest.mark.integration


def lineage(**changes: Any) -> Lineage:
    return Lineage(
        version="20260101T000000000000Z", created_at="2026-01-01T00:00:00+00:00", sha256="0" * 64, signature="",
        sklearn_version="1.7.0", python_version="3.11.9", model_type="StandardScaler+LogisticRegression",
        data_fingerprint="f" * 64, row_count=150, metrics={"accuracy": 0.97}, feature_names=list(FEATURES),
        classes=list(CLASSES), **changes,
    )  # fmt: skip


def test_feedback_rows_is_signed_when_set_and_older_lineages_without_it_still_verify() -> None:
    for rows in (0, 37):
        metadata = lineage(feedback_rows=rows).signed_with(keys.KEYRING).to_metadata()
        assert metadata["feedback_rows"] == str(rows)
        read = Lineage.from_metadata(metadata, "n")
        assert read.feedback_rows == rows
        assert read.verifies(keys.READER)
        assert not Lineage.from_metadata(metadata | {"feedback_rows": "38"}, "n").verifies(keys.READER)
        with pytest.raises(ArtifactRejected, match="bad_metadata"):
            Lineage.from_metadata(metadata | {"feedback_rows": f" {rows}"}, "n")
    older = lineage().signed_with(keys.KEYRING).to_metadata()
    assert "feedback_rows" not in older  # what an artifact signed before the field existed stores
    read = Lineage.from_metadata(older, "n")
    assert read.feedback_rows is None
    assert read.verifies(keys.READER)
    assert "accuracy_floor" not in read.metrics  # and one from before the floor was recorded
    assert replace(read, feedback_rows=None).to_metadata() == older


def test_a_run_counts_the_rows_it_learned_from_feedback_files_and_signs_its_floor(
    trainer_settings: TrainerSettings, store: ModelStore, bucket: storage.Bucket
) -> None:
    put(bucket, "data/iris.csv", csv_text(iris_rows()))
    put(bucket, "data/feedback-20261205T013000000000Z.csv", csv_text(iris_rows(seed=3)[::5]))  # 30 rows
    put(bucket, "data/more.csv", csv_text(iris_rows(noise=0.0)[::10]))  # not feedback
    summary = train_once(configured(trainer_settings, max_upload_share=1.0))
    assert summary["status"] == "published", summary
    used = summary["file_reports"]["data/feedback-20261205T013000000000Z.csv"]["rows_used"]
    assert used == 30
    assert summary["feedback_rows"] == used
    loaded = store.load(store.list_versions()[-1])
    assert loaded.lineage.feedback_rows == used
    assert loaded.lineage.metrics["accuracy_floor"] == trainer_settings.accuracy_floor


def test_feedback_rows_counts_only_the_rows_left_after_the_upload_share_cap(
    trainer_settings: TrainerSettings, store: ModelStore, bucket: storage.Bucket
) -> None:
    put(bucket, "data/iris.csv", csv_text(iris_rows()))
    put(bucket, "data/feedback-20261205T013000000000Z.csv", csv_text(iris_rows(seed=4, copies=2)))  # 300 rows
    summary = train_once(configured(trainer_settings, max_upload_share=0.5))
    assert summary["status"] == "published", summary
    assert summary["feedback_rows"] == 150  # half of what it joins: 150 iris rows kept, 150 of its 300
    assert store.load(store.list_versions()[-1]).lineage.feedback_rows == 150


def test_the_joiners_csv_is_accepted_into_data_unchanged_by_the_ingest_function(
    trainer_settings: TrainerSettings, bucket: storage.Bucket, common_env: dict[str, str]
) -> None:
    now = time.time()
    ids = [uuid7.new(now - 60 + i) for i in range(3)]
    rows = [(5.1, 3.5, 1.4, 0.2), (5.9, 2.8, 4.3, 1.3), (6.7, 3.1, 5.8, 2.2)]
    ship(bucket, PREDICTIONS, [answer(i, now - 60, [r], ["setosa"]) for i, r in zip(ids, rows, strict=True)], now - 60)
    ship(bucket, FEEDBACK, [feedback(i, 0, c, now - 10) for i, c in zip(ids, CLASSES, strict=True)], now - 10)
    result = Joiner(configured(trainer_settings, feedback_min_rows=3), bucket, Metrics(CollectorRegistry())).run_once(
        now
    )
    assert result.csv is not None
    written = bucket.get_blob(result.csv)
    uploaded = written.download_as_bytes()
    outcome = ingest(
        bucket, result.csv, written.generation, IngestSettings(**{k.lower(): v for k, v in common_env.items()})
    )
    assert outcome.status == "promoted", outcome
    data_name = "data/" + result.csv.removeprefix("incoming/")
    assert outcome.data == data_name
    assert bucket.blob(data_name).download_as_bytes() == uploaded
    assert names(bucket, "incoming/") == []
    assert names(bucket, "quarantine/") == []


def one_shot(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "trainer.feedback"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_one_shot_command_runs_a_pass_and_fails_with_exit_1(
    common_env: dict[str, str], bucket: storage.Bucket
) -> None:
    now = time.time()
    request_id = uuid7.new(now - 60)
    ship(bucket, PREDICTIONS, [answer(request_id, now - 60, [(5.1, 3.5, 1.4, 0.2)], ["setosa"])], now - 60)
    ship(bucket, FEEDBACK, [feedback(request_id, 0, "setosa", now - 10)], now - 10)
    env = trainer_env(common_env, SPLIT_SALT_PUBLIC="true", FEEDBACK_MIN_ROWS="1")
    done = one_shot(env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["status"], summary["outcomes"]) == ("ok", {"joined": 1})
    assert names(bucket, "incoming/") == [summary["csv"]]
    unreachable = one_shot(env | {"STORAGE_EMULATOR_HOST": "127.0.0.1:9", "GCS_RETRY_DEADLINE": "1"})
    assert unreachable.returncode == 1
    assert "feedback joiner failed" in unreachable.stderr


class QuietSubscriber:
    """A subscription on which nothing arrives: each pull waits its timeout and returns no message."""

    def subscription_path(self, project: str, name: str) -> str:
        return f"projects/{project}/subscriptions/{name}"

    def create_subscription(self, **_: Any) -> None:
        raise gexc.AlreadyExists("exists")

    def pull(self, timeout: float, **_: Any) -> SimpleNamespace:
        time.sleep(timeout)
        return SimpleNamespace(received_messages=[])

    def close(self) -> None:
        return None


@pytest.mark.parametrize(("interval", "least", "most"), [(0.2, 2, 5), (0.0, 0, 0)])
def test_the_watcher_runs_a_pass_on_its_timer_and_never_when_the_interval_is_0(
    trainer_settings: TrainerSettings, interval: float, least: int, most: int
) -> None:
    settings = configured(trainer_settings, feedback_join_interval=interval)
    watcher = Watcher(settings, lambda _: RunOutcome.SKIPPED, QuietSubscriber())  # type: ignore[arg-type]
    passes: list[float] = []
    watcher.join = lambda: passes.append(time.monotonic())
    stop = threading.Event()
    thread = threading.Thread(target=watcher.serve, args=(stop,))
    thread.start()
    time.sleep(2.5)  # a pull waits up to 1 s: about one pass per pull
    stop.set()
    thread.join(15)
    assert least <= len(passes) <= most
