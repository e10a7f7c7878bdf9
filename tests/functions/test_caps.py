"""Uploads shaped to exhaust the function's memory: a gzip bomb of one line and a long line are refused before csv
splits them, with the function's peak RSS (measured in a subprocess) far below its 512 MiB, and end quarantined."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from google.cloud import storage

from functions.main import ingest_upload
from tests.functions.helpers import VALID_CSV, event_for, names

pytestmark = pytest.mark.integration

LIMIT_MIB = 512
"""The deployed function's --memory."""
BOUND_MIB = 200
"""Peak RSS allowed for one upload: the interpreter, the GCS client and a 32 MiB file, far below LIMIT_MIB."""
ONE_LINE = b"5.1," * (8 * 1024 * 1024)  # 32 MiB, 8 M fields in one line
LONG_LINE = VALID_CSV + b"x" * (30 * 1024 * 1024) + b"\n"  # 30 MiB without a separator

INGEST = """
import json, sys
from google.cloud import storage
from core import gcs
from core.settings import load
from functions import ingest
from functions.settings import IngestSettings
settings = load(IngestSettings)
bucket = gcs.client(settings).bucket(settings.gcs_bucket)
blob = bucket.get_blob(sys.argv[1])
outcome = ingest.ingest(bucket, blob.name, blob.generation, settings)
# VmHWM, not getrusage: a child's ru_maxrss starts from its parent's RSS at fork (pytest's, here)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
peak = int(status["VmHWM"].split()[0]) / 1024
print(json.dumps({"status": outcome.status, "reason": outcome.reason, "peak_mib": peak}))
"""


def gzip_upload(bucket: storage.Bucket, name: str, data: bytes) -> storage.Blob:
    blob = bucket.blob(name)
    blob.content_encoding = "gzip"
    blob.upload_from_string(gzip.compress(data, 9), content_type="text/csv")
    return blob


def ingest_in_a_subprocess(name: str, env: dict[str, str]) -> dict:
    """Ingest one upload in a fresh interpreter; its outcome and peak RSS in MiB."""
    run = subprocess.run(
        [sys.executable, "-c", INGEST, name],
        env={**os.environ, **env, "PYTHONPATH": str(Path.cwd())},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("data", "reason"),
    [(ONE_LINE, "line 1: a record of more than 1000 fields"), (LONG_LINE, "line 5: a record longer than 65536")],
    ids=["gzip-bomb-of-one-line", "long-line"],
)
def test_one_huge_line_is_quarantined_with_peak_rss_far_below_the_limit(
    bucket: storage.Bucket, common_env: dict[str, str], data: bytes, reason: str
) -> None:
    source = gzip_upload(bucket, "incoming/line.csv", data)
    assert source.size < 64 * 1024  # 32 KiB on the wire

    result = ingest_in_a_subprocess(source.name, common_env)

    assert result["status"] == "quarantined"
    assert result["reason"].startswith(reason)
    assert result["peak_mib"] < BOUND_MIB < LIMIT_MIB, result
    assert names(bucket) == ["quarantine/line.csv", "quarantine/line.csv.error.json"]
    report = json.loads(bucket.blob("quarantine/line.csv.error.json").download_as_bytes())
    assert report["fatal"].startswith(reason)
    assert report["outcome"] == "quarantined"
    assert bucket.blob("quarantine/line.csv").download_as_bytes() == data  # nothing lost


def test_the_bomb_event_is_acknowledged_and_a_redelivery_is_a_no_op(
    bucket: storage.Bucket, function_env: Callable
) -> None:
    source = gzip_upload(bucket, "incoming/bomb.csv", ONE_LINE)
    event = event_for(source)

    ingest_upload(event)  # returns: the platform acknowledges the event instead of redelivering it for a day
    after = names(bucket)
    ingest_upload(event)

    assert after == names(bucket) == ["quarantine/bomb.csv", "quarantine/bomb.csv.error.json"]
