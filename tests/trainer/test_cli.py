"""`python -m trainer` as a subprocess: exit codes, the JSON summary line, concurrency, outages, --schedule."""

from __future__ import annotations

import json
import select
import signal
import time
from pathlib import Path

import pytest
from google.cloud import storage

from core import layout
from devstack import emulators
from tests.conftest import PROJECT
from tests.emulator_fixtures import seed_evalset
from tests.trainer.conftest import csv_text, iris_rows, model_names, put, run_trainer, start_trainer, trainer_env

pytestmark = pytest.mark.integration


def test_first_run_publishes_and_second_run_skips(common_env: dict[str, str], bucket: storage.Bucket) -> None:
    env = trainer_env(common_env)
    first = run_trainer(env)
    assert first.returncode == 0, first.stderr
    assert first.summary["status"] == "published"
    assert model_names(bucket) == [first.summary["object"]]
    second = run_trainer(env)
    assert second.returncode == 0, second.stderr
    assert (second.summary["status"], second.summary["reason"]) == ("skipped", "no new data")
    assert second.summary["model_version"] == first.summary["model_version"]
    print(f"trainer subprocess: first run {first.seconds:.2f} s, no-new-data run {second.seconds:.2f} s")
    forced = run_trainer(env, "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.summary["status"] == "published"
    assert len(model_names(bucket)) == 2


def test_gate_rejection_exits_0_and_publishes_nothing(common_env: dict[str, str], bucket: storage.Bucket) -> None:
    put(bucket, "data/noisy.csv", csv_text(iris_rows(noise=0.3, seed=5)))
    run = run_trainer(trainer_env(common_env, ACCURACY_FLOOR="1.0"))
    assert run.returncode == 0, run.stderr
    assert run.summary["status"] == "rejected"
    assert model_names(bucket) == []


def test_out_of_range_floor_is_a_configuration_error(common_env: dict[str, str]) -> None:
    run = run_trainer(trainer_env(common_env, ACCURACY_FLOOR="1.01"))
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.startswith("configuration error: ACCURACY_FLOOR:")
    assert run.stderr.count("\n") == 1


@pytest.mark.parametrize("existing_model", [False, True], ids=["empty-bucket", "new-csv"])
def test_two_trainers_at_once_publish_exactly_one_artifact(
    common_env: dict[str, str], bucket: storage.Bucket, existing_model: bool
) -> None:
    env = trainer_env(common_env)
    if existing_model:
        assert run_trainer(env).returncode == 0
        put(bucket, "data/more.csv", csv_text(iris_rows(noise=0.02, seed=5)))
    before = model_names(bucket)
    procs = [start_trainer(env) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    statuses = sorted(json.loads(out)["status"] for out, _ in outputs)
    # the loser finds the claim in training (busy) or already published (skipped), depending on timing
    assert statuses.count("published") == 1, outputs
    assert {*statuses} - {"published"} <= {"busy", "skipped"}, outputs
    assert len(set(model_names(bucket)) - set(before)) == 1


def _assert_one_line_failure(stderr: str) -> None:
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("trainer failed: GCS unavailable:")


@pytest.mark.faults
def test_gcs_unreachable_exits_1_with_one_line_on_stderr(common_env: dict[str, str]) -> None:
    closed = f"127.0.0.1:{emulators.free_port()}"
    run = run_trainer(trainer_env(common_env, STORAGE_EMULATOR_HOST=closed, GCS_RETRY_DEADLINE="2"))
    assert run.returncode == 1
    assert run.summary["status"] == "failed"
    _assert_one_line_failure(run.stderr)
    assert run.seconds < 2 + 15  # bounded by GCS_RETRY_DEADLINE, not by the client defaults


def _wait_for_object(bucket: storage.Bucket, prefix: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(True for _ in bucket.list_blobs(prefix=prefix)):
            return
        time.sleep(0.02)
    raise AssertionError(f"no object under {prefix} after {timeout} s")


@pytest.mark.faults
def test_gcs_dies_mid_run_leaves_no_artifact(common_env: dict[str, str], tmp_path: Path) -> None:
    """The server is killed once the trainer has claimed the data and is reading ~15 MB of CSV."""
    root, port = tmp_path / "gcs", emulators.free_port()
    root.mkdir()
    server = emulators.start_fake_gcs(port, root, tmp_path / "fake-gcs.log")
    try:
        bucket = emulators.ensure_bucket(server.host, PROJECT, "outage-bucket")
        seed_evalset(bucket)
        put(bucket, "data/big.csv", csv_text(iris_rows(noise=0.02, copies=2000)))
        env = trainer_env(common_env, STORAGE_EMULATOR_HOST=server.host, GCS_BUCKET="outage-bucket")
        proc = start_trainer(env | {"GCS_RETRY_DEADLINE": "2"})
        _wait_for_object(bucket, layout.CLAIMS, timeout=30)
        server.stop()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        server.stop()
    assert proc.returncode == 1, stdout
    assert json.loads(stdout)["status"] == "failed"
    _assert_one_line_failure(stderr)
    restarted = emulators.start_fake_gcs(port, root, tmp_path / "fake-gcs-2.log")
    try:
        bucket = emulators.storage_client(restarted.host, PROJECT).bucket("outage-bucket")
        assert [b.name for b in bucket.list_blobs(prefix=layout.DATA)] == ["data/big.csv"]
        assert model_names(bucket) == []
    finally:
        restarted.stop()


def test_schedule_runs_the_first_job_at_once(common_env: dict[str, str], bucket: storage.Bucket) -> None:
    proc = start_trainer(trainer_env(common_env, TRAIN_SCHEDULE="* * * * *"), "--schedule")
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no summary line within 60 s"
        summary = json.loads(proc.stdout.readline())
        assert summary["status"] == "published"
        assert proc.poll() is None  # still scheduled
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert model_names(bucket) == [summary["object"]]
