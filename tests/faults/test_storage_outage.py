"""Check 2: fake-gcs-server down at a pod's start and in the middle of a run.

A pod started while storage is down stays live and not ready, then becomes ready when storage returns (same port,
same filesystem root). Down mid-run, the pods keep answering from the model in memory, the trainer fails with exit 1
and one clear stderr line, and no partial artifact is left behind.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sklearn.pipeline import Pipeline

from tests.faults.load import PREDICT_BODY, running
from tests.faults.report import Row
from tests.faults.stack import ROOT, Stack, start_stack
from tests.polling import wait_for
from trainer import data

pytestmark = [pytest.mark.faults, pytest.mark.e2e]
DOWN_AT_START = 6.0
"""Seconds the late pod runs against a stopped storage before it comes back."""


@pytest.fixture(scope="module")
def storage_stack(tmp_path_factory: pytest.TempPathFactory, fitted_model: Pipeline) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("faults-gcs"))
    try:
        store = stack.store()
        data.seed_iris_csv(store.bucket, store.retry)  # data/ ready: the trainer goes straight to reading it
        version = store.publish(fitted_model, data_fingerprint="gcs-0", row_count=150, metrics={}).version
        stack.start_pods(["steady"], version, RECONCILE_INTERVAL="5")
        yield stack
    finally:
        stack.stop()


def test_pod_started_while_storage_is_down(storage_stack: Stack, row: Row) -> None:
    steady = storage_stack.pods[0]
    version = steady.model()["model_version"]
    storage_stack.emu.stop_gcs()
    try:
        late = storage_stack.start_pod("late", RECONCILE_INTERVAL="5")
        wait_for(lambda: late.status("/v2/health/live") == 200, 60, "the late pod answering at all")
        down_since = time.monotonic()
        probes = []
        while time.monotonic() - down_since < DOWN_AT_START:
            predict = requests.post(late.url + "/predict", json=PREDICT_BODY, timeout=10).status_code
            probes.append((late.status("/v2/health/live"), late.status("/v2/health/ready"), predict))
            time.sleep(0.5)
    finally:
        storage_stack.emu.restart_gcs()
    back_at = time.monotonic()
    late.wait_ready(60)
    ready_after = time.monotonic() - back_at
    # readiness is pod-wide: once ready, every worker serves (each request is a new connection, any worker)
    after_ready = [requests.post(late.url + "/predict", json=PREDICT_BODY, timeout=10).status_code for _ in range(40)]
    late.wait_serving(version, 60)
    row.add_load(len(probes) * 3 + len(after_ready), sum(s != 200 for s in after_ready), [version])
    row.note(f"{len(probes)} probes while down: live/ready/predict = {sorted(set(probes))}; "
             f"ready {ready_after:.1f} s after storage returned")  # fmt: skip
    assert set(probes) == {(200, 503, 503)}
    assert after_ready == [200] * len(after_ready)
    assert late.service.alive()


def test_storage_down_mid_run(storage_stack: Stack, row: Row) -> None:
    """Storage stops while the trainer is between reading data/ and publishing; pods keep serving."""
    pods, log = storage_stack.pods, storage_stack.emu.gcs.log_path
    version = pods[0].model()["model_version"]
    before = [r.version for r in storage_stack.store().list_versions()]
    env = storage_stack.env(GCS_RETRY_DEADLINE="3")
    offset = log.stat().st_size
    with running([p.url for p in pods], threads=4, pause=0.02) as load:
        started = time.monotonic()
        trainer = subprocess.Popen([sys.executable, "-m", "trainer", "--force"], cwd=ROOT, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        try:
            wait_for(lambda: reading_data(log, offset), 60, "the trainer downloading data/", interval=0.02)
            storage_stack.emu.stop_gcs()
            stopped_after = time.monotonic() - started
            _, stderr_text = trainer.communicate(timeout=120)
            time.sleep(max(0.0, 6 - (time.monotonic() - started - stopped_after)))  # a 5 s reconcile meets it
        finally:
            storage_stack.emu.restart_gcs()
            trainer.kill() if trainer.poll() is None else None
        time.sleep(1)
    store = storage_stack.store()
    refs = store.list_versions()
    loaded = [store.load(ref).version for ref in refs]  # raises ArtifactRejected on any partial artifact
    stderr = stderr_text.strip().splitlines()
    row.add_load(load.sent, len(load.failures()), load.versions())
    row.note(
        f"storage stopped {stopped_after:.1f} s into the trainer run (after it read data/); trainer exit "
        f"{trainer.returncode}: {stderr[-1][:100] if stderr else ''!r}; {len(refs)} artifacts after, all verify"
    )
    assert load.failures() == []
    assert load.versions() == [version]
    assert trainer.returncode == 1
    assert stderr
    assert stderr[-1].startswith("trainer failed: ")
    assert "unavailable" in stderr[-1].lower()
    assert [r.version for r in refs] == before == loaded
    assert all(p.service.alive() for p in pods)


def reading_data(log: Path, offset: int) -> bool:
    """Whether fake-gcs-server logged a download of an object under data/ after byte `offset`."""
    with log.open("rb") as handle:
        handle.seek(offset)
        return any(b"/o/data%2F" in line and b"alt=media" in line for line in handle)
