"""Redelivery, halfway failures, stale generations, races on destination names and transient errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from google.api_core import exceptions as gexc
from google.cloud import storage

from core import gcs
from core.errors import StoreUnavailable
from devstack.emulators import free_port
from functions import ingest
from functions.main import ingest_upload
from functions.outputs import MAX_NAME_BYTES, REPORT_SUFFIX, Folder, NameTaken, Source, Writer, candidates
from functions.settings import IngestSettings
from tests.functions.helpers import CANONICAL_CSV, MIXED_CSV, VALID_CSV, event_for, names, snapshot, upload

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("policy", "content"),
    [("reject", VALID_CSV), ("reject", MIXED_CSV), ("split", MIXED_CSV)],
    ids=["valid", "reject", "split"],
)
def test_the_same_event_twice_leaves_the_same_end_state(
    bucket: storage.Bucket, function_env: Callable, policy: str, content: bytes
) -> None:
    function_env(invalid_rows_policy=policy)
    event = event_for(upload(bucket, "incoming/iris.csv", content))

    ingest_upload(event)
    once = snapshot(bucket)
    ingest_upload(event)

    assert snapshot(bucket) == once
    assert not [n for n in once if n.startswith("incoming/")]


def test_halfway_failure_after_the_copy_is_completed_by_the_next_delivery(
    bucket: storage.Bucket, settings: IngestSettings
) -> None:
    source = upload(bucket, "incoming/iris.csv", VALID_CSV)
    upload(bucket, "data/other.csv", b"unrelated")
    _write_as_ingest(bucket, source, "data/iris.csv", VALID_CSV, "data", "reject")
    copied = bucket.get_blob("data/iris.csv").generation

    outcome = ingest.ingest(bucket, source.name, source.generation, settings)

    assert (outcome.status, outcome.data) == ("promoted", "data/iris.csv")
    assert names(bucket) == ["data/iris.csv", "data/other.csv"]
    assert bucket.get_blob("data/iris.csv").generation == copied


def test_copy_under_a_suffixed_name_is_found_again(bucket: storage.Bucket, settings: IngestSettings) -> None:
    source = upload(bucket, "incoming/iris.csv", VALID_CSV)
    upload(bucket, "data/iris.csv", b"someone else's file")
    _write_as_ingest(bucket, source, f"data/iris-{source.generation}.csv", VALID_CSV, "data", "reject")

    ingest.ingest(bucket, source.name, source.generation, settings)

    assert names(bucket) == [f"data/iris-{source.generation}.csv", "data/iris.csv"]


def test_quarantine_written_but_report_missing_gets_its_report(
    bucket: storage.Bucket, settings: IngestSettings
) -> None:
    source = upload(bucket, "incoming/mixed.csv", MIXED_CSV)
    _write_as_ingest(bucket, source, "quarantine/mixed.csv", MIXED_CSV, "quarantine", "reject")

    ingest.ingest(bucket, source.name, source.generation, settings)

    assert names(bucket) == ["quarantine/mixed.csv", "quarantine/mixed.csv.error.json"]
    assert json.loads(bucket.blob("quarantine/mixed.csv.error.json").download_as_bytes())["rows_invalid"] == 2


def test_an_earlier_delivery_pins_the_policy(bucket: storage.Bucket, settings: IngestSettings) -> None:
    source = upload(bucket, "incoming/mixed.csv", MIXED_CSV)
    _write_as_ingest(bucket, source, "quarantine/mixed.csv", MIXED_CSV, "quarantine", "reject")
    split = settings.model_copy(update={"invalid_rows_policy": "split"})

    outcome = ingest.ingest(bucket, source.name, source.generation, split)

    assert (outcome.status, outcome.data) == ("quarantined", None)
    assert names(bucket) == ["quarantine/mixed.csv", "quarantine/mixed.csv.error.json"]
    assert json.loads(bucket.blob("quarantine/mixed.csv.error.json").download_as_bytes())["policy"] == "reject"


def test_event_for_a_replaced_generation_is_a_no_op(bucket: storage.Bucket, function_env: Callable) -> None:
    old = upload(bucket, "incoming/iris.csv", MIXED_CSV)
    new = upload(bucket, "incoming/iris.csv", VALID_CSV)

    ingest_upload(event_for(old))
    assert names(bucket) == ["incoming/iris.csv"]
    assert bucket.get_blob("incoming/iris.csv").generation == new.generation

    ingest_upload(event_for(new))
    assert names(bucket) == ["data/iris.csv"]
    assert bucket.blob("data/iris.csv").download_as_bytes() == CANONICAL_CSV


def test_event_for_an_already_ingested_object_is_a_no_op(bucket: storage.Bucket, settings: IngestSettings) -> None:
    source = upload(bucket, "incoming/iris.csv", VALID_CSV)
    assert ingest.ingest(bucket, source.name, source.generation, settings).status == "promoted"
    after = snapshot(bucket)

    outcome = ingest.ingest(bucket, source.name, source.generation, settings)

    assert outcome.status == "stale"
    assert snapshot(bucket) == after


def test_a_concurrent_delivery_that_wrote_first_is_recognised(bucket: storage.Bucket, settings: IngestSettings) -> None:
    source_blob = upload(bucket, "incoming/iris.csv", VALID_CSV)
    source = Source(bucket, source_blob.name, source_blob.generation, gcs.retry(settings))
    folder = Folder(source, "data/", "iris.csv")  # listed before the other delivery wrote
    _write_as_ingest(bucket, source_blob, "data/iris.csv", VALID_CSV, "data", "reject")

    name = folder.place("data", folder.names(), Writer(source, VALID_CSV, "text/csv", source.tags("data", "reject")))

    assert name == "data/iris.csv"
    assert names(bucket, "data/") == ["data/iris.csv"]


def test_a_name_held_by_another_source_is_never_overwritten(bucket: storage.Bucket, settings: IngestSettings) -> None:
    source_blob = upload(bucket, "incoming/x.csv", MIXED_CSV)
    source = Source(bucket, source_blob.name, source_blob.generation, gcs.retry(settings))
    folder = Folder(source, "quarantine/", "x.csv")
    upload(bucket, "quarantine/x.csv.error.json", b"{}")  # appeared after the listing

    with pytest.raises(NameTaken):
        folder.place("report", ["quarantine/x.csv.error.json"], Writer(source, b"[]", "application/json", {}))

    assert bucket.blob("quarantine/x.csv.error.json").download_as_bytes() == b"{}"


def test_candidate_names_fit_a_gcs_name_with_the_report_suffix() -> None:
    long = "incoming/" + "é" * 700 + ".csv"
    for name in candidates("quarantine/", long.removeprefix("incoming/"), 1795773018343630)[:3]:
        assert len((name + REPORT_SUFFIX).encode()) <= MAX_NAME_BYTES
        assert name.startswith("quarantine/éé")
        assert name.endswith(".csv")
    assert candidates("data/", "a/b.csv", 7)[:3] == ["data/a/b.csv", "data/a/b-7.csv", "data/a/b-7-2.csv"]


def test_transient_gcs_errors_propagate_after_the_bounded_retries(
    function_env: Callable, bucket: storage.Bucket
) -> None:
    function_env(storage_emulator_host=f"127.0.0.1:{free_port()}", gcs_retry_deadline="0.5")
    event = event_for(upload(bucket, "incoming/iris.csv", VALID_CSV))

    with pytest.raises(StoreUnavailable) as caught:
        ingest_upload(event)
    assert isinstance(caught.value.__cause__, gexc.RetryError)


def test_one_structured_log_line_per_file(
    bucket: storage.Bucket, settings: IngestSettings, caplog: pytest.LogCaptureFixture
) -> None:
    source = upload(bucket, "incoming/mixed.csv", MIXED_CSV)
    caplog.set_level(logging.DEBUG, logger="functions.ingest")

    ingest.handle(bucket.client, dict(event_for(source).data), settings)

    [record] = [r for r in caplog.records if r.name == "functions.ingest"]
    assert record.levelno == logging.WARNING
    assert record.ingest == {  # type: ignore[attr-defined]
        "status": "quarantined",
        "source": "incoming/mixed.csv",
        "generation": source.generation,
        "reason": "2 of 4 rows invalid",
        "data": None,
        "quarantine": "quarantine/mixed.csv",
        "report": "quarantine/mixed.csv.error.json",
        "rows_total": 4,
        "rows_valid": 2,
        "rows_invalid": 2,
    }


def _write_as_ingest(
    bucket: storage.Bucket, source: storage.Blob, name: str, content: bytes, role: str, policy: str
) -> None:
    """What an earlier delivery that stopped right after this write would have left."""
    blob = bucket.blob(name)
    blob.metadata = {
        "source-object": source.name,
        "source-generation": str(source.generation),
        "ingest-role": role,
        "ingest-policy": policy,
    }
    blob.upload_from_string(content, if_generation_match=0)
