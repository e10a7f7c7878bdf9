"""Check 6: hundreds of generated bad CSVs dropped into incoming/ go the real path and nothing is lost.

upload -> fake-gcs-server notification -> Pub/Sub emulator -> devstack.bridge -> functions-framework (ingest_upload,
INVALID_ROWS_POLICY=split). Every file is quarantined with a report, every good row ends in data/, every upload
is consumed, and the predictor pods (hearing all of these notifications too) keep serving.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from google.cloud import storage
from hypothesis import HealthCheck, Phase, given, settings

from core import layout
from devstack import emulators
from tests.faults.csvs import BadCsv, bad_csvs
from tests.faults.load import running
from tests.faults.report import Row
from tests.faults.stack import PROJECT, TEARDOWN_GRACE, Pod, Stack, spawn
from tests.polling import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.e2e]
EXAMPLES = 200
SUFFIXES = [".csv", ".CSV", ".txt", "", " (copy).csv", "/nested/part.csv"]


def generate(count: int) -> list[BadCsv]:
    """`count` bad CSVs drawn by hypothesis (generation only: nothing to shrink, the checks run on the batch)."""
    drawn: list[tuple[bytes, int, int, bool]] = []

    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(bad_csvs())
    def collect(case: tuple[bytes, int, int, bool]) -> None:
        drawn.append(case)

    collect()
    names = [f"{layout.INCOMING}fuzz-{i:03d}{SUFFIXES[i % len(SUFFIXES)]}" for i in range(len(drawn))]
    return [BadCsv(name, *case) for name, case in zip(names, drawn, strict=True)]


@pytest.fixture(scope="module")
def ingest_stack(main_stack: Stack) -> Iterator[Stack]:
    """A bucket of its own on the main emulators, with the function and the bridge delivering its events."""
    name = f"faults-ingest-{uuid.uuid4().hex[:8]}"
    emulators.ensure_bucket(main_stack.emu.gcs.host, PROJECT, name)
    stack = Stack(main_stack.emu, name)
    env = stack.env(INVALID_ROWS_POLICY="split", LOG_LEVEL="WARNING")
    port = emulators.free_port()
    function_cmd = [sys.executable, "-m", "functions_framework", "--source", "functions/main.py", "--target",
                    "ingest_upload", "--signature-type", "cloudevent", "--port", str(port)]  # fmt: skip
    function = spawn("function", function_cmd, env, stack.workdir / "function.log", port)
    stack.others.append(function)
    url = f"http://127.0.0.1:{port}/"
    bridge = spawn("bridge", [sys.executable, "-m", "devstack.bridge", "--function-url", url], env,
                   stack.workdir / "bridge.log")  # fmt: skip
    stack.others.append(bridge)
    try:
        wait_for(lambda: any("ingest-bridge-" in s for s in stack.emu.subscriptions()), 60, "the bridge subscribed")
        wait_for(lambda: _answers(url), 60, "the function listening")
        yield stack
    finally:
        for service in stack.others:
            service.stop(timeout=TEARDOWN_GRACE)


def _answers(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=2).status_code < 600
    except requests.RequestException:
        return False


def outputs(bucket: storage.Bucket) -> dict[str, dict[str, storage.Blob]]:
    """source object -> role (data / quarantine / report) -> the object ingest wrote for it."""
    found: dict[str, dict[str, storage.Blob]] = defaultdict(dict)
    for prefix in (layout.DATA, layout.QUARANTINE):
        for blob in bucket.client.list_blobs(bucket, prefix=prefix):
            tags = blob.metadata or {}
            assert tags.get("ingest-role") not in found[tags.get("source-object", "")], f"two copies: {blob.name}"
            found[tags.get("source-object", "")][tags.get("ingest-role", "")] = blob
    return found


def expected_roles(case: BadCsv) -> set[str]:
    return {"quarantine", "report"} | ({"data"} if case.expected_good and not case.fatal else set())


def data_rows(blob: storage.Blob) -> int:
    return len(list(csv.reader(io.StringIO(blob.download_as_text())))) - 1


def test_generated_bad_csvs_lose_nothing(ingest_stack: Stack, pods: list[Pod], row: Row) -> None:
    cases = generate(EXAMPLES)
    bucket = ingest_stack.bucket()

    def upload(case: BadCsv) -> None:
        bucket.blob(case.name).upload_from_string(case.content, content_type="text/csv")

    def done() -> bool:
        if list(bucket.client.list_blobs(bucket, prefix=layout.INCOMING, max_results=1)):
            return False
        found = outputs(bucket)
        return all(set(found.get(c.name, {})) == expected_roles(c) for c in cases)

    with running([p.url for p in pods], threads=2, pause=0.05) as load:
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(upload, cases))
        uploaded = time.monotonic() - started
        wait_for(done, 240, "every upload ingested", interval=1.0)
        elapsed = time.monotonic() - started
    found = outputs(bucket)
    reports: dict[str, Any] = {c.name: json.loads(found[c.name]["report"].download_as_bytes()) for c in cases}
    good_in = sum(c.expected_good for c in cases if not c.fatal)
    good_out = {c.name: data_rows(found[c.name]["data"]) for c in cases if "data" in found[c.name]}
    fatal = sum(c.fatal for c in cases)
    row.add_load(load.sent, len(load.failures()), load.versions())
    row.note(f"{len(cases)} CSVs ({fatal} broken whole, {len(cases) - fatal} mixed) through the full bridge path in "
             f"{elapsed:.1f} s (uploads {uploaded:.1f} s); {good_in} good rows in, {sum(good_out.values())} in data/; "
             f"{sum(c.expected_bad for c in cases)} bad rows reported")  # fmt: skip
    assert len(cases) == EXAMPLES
    assert load.failures() == []
    assert {c.name: set(found[c.name]) for c in cases} == {c.name: expected_roles(c) for c in cases}
    assert good_out == {c.name: c.expected_good for c in cases if "data" in expected_roles(c)}
    assert {n: (r["rows_valid"], r["rows_invalid"]) for n, r in reports.items() if r["fatal"] is None} == {
        c.name: (c.expected_good, c.expected_bad) for c in cases if not c.fatal
    }
    assert all(reports[c.name]["fatal"] or reports[c.name]["reason"] for c in cases)
