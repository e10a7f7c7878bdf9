"""Check 5: two trainer runs at once on the same new data publish exactly one artifact."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from core import gcs
from core.settings import CommonSettings
from devstack import emulators
from tests.emulator_fixtures import seed_evalset
from tests.faults.report import Row
from tests.faults.stack import PROJECT, ROOT, Stack
from trainer import data

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


def test_two_trainers_one_artifact(main_stack: Stack, row: Row) -> None:
    """A fresh bucket: new data in data/ and no model yet."""
    bucket_name = f"faults-race-{uuid.uuid4().hex[:8]}"
    bucket = emulators.ensure_bucket(main_stack.emu.gcs.host, PROJECT, bucket_name)
    seed_evalset(bucket)
    race = Stack(main_stack.emu, bucket_name)
    assert data.seed_iris_csv(bucket, gcs.retry(CommonSettings.model_validate({})))  # the new data
    env = race.env()
    started = time.monotonic()
    runs = [subprocess.Popen([sys.executable, "-m", "trainer"], cwd=ROOT, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]  # fmt: skip
    outputs = [run.communicate(timeout=180) for run in runs]
    elapsed = time.monotonic() - started
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    versions = [ref.version for ref in race.store().list_versions()]
    new = versions
    row.add_load(0, 0, new)
    row.note(
        f"{len(runs)} concurrent runs in {elapsed:.1f} s: "
        + "; ".join(f"{s['status']} ({s.get('reason', s.get('model_version'))})" for s in summaries)
    )
    assert [run.returncode for run in runs] == [0, 0], [err[-500:] for _, err in outputs]
    statuses = sorted(s["status"] for s in summaries)
    assert statuses.count("published") == 1, statuses
    assert {*statuses} - {"published"} <= {"busy", "skipped"}, statuses
    assert len(new) == 1
    assert new == [next(s["model_version"] for s in summaries if s["status"] == "published")]
