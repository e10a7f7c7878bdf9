"""Property-based: hundreds of malformed CSVs are each quarantined with a report, or split, and no row is lost."""

from __future__ import annotations

import json
import uuid

import pytest
from google.cloud import storage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import csvscan, iris
from functions import ingest
from functions.ingest import IngestResult
from functions.settings import IngestSettings
from tests.functions.helpers import upload
from tests.functions.strategies import Sample, samples

pytestmark = pytest.mark.integration
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _ingest(bucket: storage.Bucket, content: bytes, settings: IngestSettings) -> IngestResult:
    """Upload under a unique name and ingest it; whatever is quarantined has its report beside it.

    (Exact object listings are asserted in the example-based tests; here every request counts.)
    """
    source = upload(bucket, f"incoming/{uuid.uuid4().hex}.csv", content)
    result = ingest.ingest(bucket, source.name, source.generation, settings)
    if result.quarantine:
        assert result.report == result.quarantine + ".error.json"
        report = json.loads(_read(bucket, result.report))
        assert report["source"]["object"] == source.name
        assert report["source"]["generation"] == source.generation
        assert report["policy"] == settings.invalid_rows_policy
        assert report["reason"]
    return result


def _read(bucket: storage.Bucket, name: str | None) -> bytes:
    return bucket.blob(name).download_as_bytes() if name else b""


def _is_canonical_form_of(data: bytes, content: bytes) -> bool:
    """`data` is the canonical CSV (schema header, five columns) of every row of `content`, values and labels kept."""
    source, _ = csvscan.validate_bytes(content)
    stored, report = csvscan.validate_bytes(data)
    header = b",".join(name.encode() for name in (*iris.FEATURES, iris.LABEL))
    same = [(r.values, r.label) for r in stored] == [(r.values, r.label) for r in source]
    return report.ok and data.split(b"\n", 1)[0] == header and same and all(len(r.raw) == 5 for r in stored)


@PROPERTY
@given(content=st.one_of(st.binary(max_size=2048), st.binary(max_size=512).map(lambda b: b"species," + b)))
def test_random_bytes_are_kept_whole_in_quarantine(
    bucket: storage.Bucket, settings: IngestSettings, content: bytes
) -> None:
    result = _ingest(bucket, content, settings)

    assert result.status == "quarantined"
    assert _read(bucket, result.quarantine) == content


@PROPERTY
@given(sample=samples())
def test_reject_policy_promotes_or_quarantines_each_file_whole(
    bucket: storage.Bucket, settings: IngestSettings, sample: Sample
) -> None:
    result = _ingest(bucket, sample.content, settings)

    if not sample.fatal and sample.valid == sample.rows:
        assert result.status == "promoted"
        assert _is_canonical_form_of(_read(bucket, result.data), sample.content)
    else:
        assert (result.status, _read(bucket, result.quarantine)) == ("quarantined", sample.content)
        if not sample.fatal:
            assert (result.rows_total, result.rows_valid) == (sample.rows, sample.valid)


@PROPERTY
@given(sample=samples())
def test_split_policy_loses_no_row(bucket: storage.Bucket, settings: IngestSettings, sample: Sample) -> None:
    split = settings.model_copy(update={"invalid_rows_policy": "split"})
    result = _ingest(bucket, sample.content, split)

    data, quarantine = _read(bucket, result.data), _read(bucket, result.quarantine)
    if not sample.fatal and sample.valid == sample.rows:
        assert (result.status, quarantine) == ("promoted", b"")
        assert _is_canonical_form_of(data, sample.content)
        return
    if sample.fatal or sample.valid == 0:
        assert (result.status, data, quarantine) == ("quarantined", b"", sample.content)
        return
    promoted, promoted_report = csvscan.validate_bytes(data)
    rejected, rejected_report = csvscan.validate_bytes(quarantine)
    assert result.status == "split"
    assert promoted_report.ok
    assert len(promoted) == sample.valid
    assert rejected_report.fatal is None
    assert rejected_report.rows_valid == 0
    assert len(promoted) + len(rejected) == sample.rows
