"""ingest_upload with real CloudEvents on fake-gcs-server: promotion, clashes, policies, fatal files, other objects."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable

import pytest
from google.cloud import storage

from core import iris
from functions.main import ingest_upload
from functions.outputs import POLICY, ROLE, SOURCE_GENERATION, SOURCE_OBJECT
from tests.functions.helpers import CANONICAL_CSV, MIXED_CSV, VALID_CSV, event_for, names, snapshot, upload

pytestmark = pytest.mark.integration


def _report(bucket: storage.Bucket, name: str) -> dict:
    return json.loads(bucket.blob(name).download_as_bytes())


def _rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


def test_valid_file_is_promoted_and_the_upload_deleted(bucket: storage.Bucket, function_env: Callable) -> None:
    source = upload(bucket, "incoming/iris.csv", VALID_CSV)

    ingest_upload(event_for(source))

    assert names(bucket) == ["data/iris.csv"]
    promoted = bucket.get_blob("data/iris.csv")
    assert promoted.download_as_bytes() == CANONICAL_CSV
    assert promoted.content_type == "text/csv"
    assert promoted.metadata == {
        SOURCE_OBJECT: "incoming/iris.csv",
        SOURCE_GENERATION: str(source.generation),
        ROLE: "data",
        POLICY: "reject",
    }


def test_data_gets_the_canonical_header_and_five_columns_never_a_formula(
    bucket: storage.Bucket, function_env: Callable
) -> None:
    upload_csv = (
        b"\xef\xbb\xbfSpecies,Petal Width (cm),SepalLengthCm,sepal.width,PETAL_LENGTH,note\r\n"
        b"Iris-setosa, 0.2 ,5.1,3.5,1.4,=cmd|' /C calc'!A0\r\n"
        b"VIRGINICA,+2.2,6.70,3.1,5.8,@SUM(A1)\r\n"
        b"versicolor,-0,5.9,2.8,4.3,-1+1\r\n"
    )
    ingest_upload(event_for(upload(bucket, "incoming/formula.csv", upload_csv)))

    assert names(bucket) == ["data/formula.csv"]
    assert bucket.blob("data/formula.csv").download_as_bytes() == (
        b"sepal_length,sepal_width,petal_length,petal_width,species\n"
        b"5.1,3.5,1.4,0.2,setosa\n"
        b"6.7,3.1,5.8,2.2,virginica\n"
        b"5.9,2.8,4.3,0.0,versicolor\n"
    )


def test_nested_and_non_csv_names_keep_their_path_and_get_the_csv_extension(
    bucket: storage.Bucket, function_env: Callable
) -> None:
    ingest_upload(event_for(upload(bucket, "incoming/team-a/2026/batch.txt", VALID_CSV)))

    assert names(bucket) == ["data/team-a/2026/batch.txt.csv"]


def test_name_clash_gets_a_generation_suffix_and_overwrites_nothing(
    bucket: storage.Bucket, function_env: Callable
) -> None:
    existing = upload(bucket, "data/iris.csv", b"someone else's file")
    first = upload(bucket, "incoming/iris.csv", VALID_CSV)
    ingest_upload(event_for(first))
    second = upload(bucket, "incoming/iris.csv", VALID_CSV.replace(b"5.1", b"5.2"))
    ingest_upload(event_for(second))

    after = snapshot(bucket)
    assert sorted(after) == [
        f"data/iris-{first.generation}.csv",
        f"data/iris-{second.generation}.csv",
        "data/iris.csv",
    ]
    assert after["data/iris.csv"][:2] == (existing.generation, b"someone else's file")
    assert after[f"data/iris-{first.generation}.csv"][1] == CANONICAL_CSV
    assert b"5.2" in after[f"data/iris-{second.generation}.csv"][1]


def test_reject_policy_quarantines_the_whole_file_with_a_row_level_report(
    bucket: storage.Bucket, function_env: Callable
) -> None:
    source = upload(bucket, "incoming/mixed.csv", MIXED_CSV)

    ingest_upload(event_for(source))

    assert names(bucket) == ["quarantine/mixed.csv", "quarantine/mixed.csv.error.json"]
    assert bucket.blob("quarantine/mixed.csv").download_as_bytes() == MIXED_CSV
    report = _report(bucket, "quarantine/mixed.csv.error.json")
    assert report["source"] == {
        "bucket": bucket.name,
        "object": "incoming/mixed.csv",
        "generation": source.generation,
        "size": len(MIXED_CSV),
    }
    assert (report["policy"], report["outcome"], report["fatal"]) == ("reject", "quarantined", None)
    assert (report["rows_total"], report["rows_valid"], report["rows_invalid"]) == (4, 2, 2)
    assert report["errors"] == [
        {"row": 3, "column": "sepal_length", "reason": "not a number: 'abc'"},
        {"row": 5, "column": "species", "reason": "unknown species 'tulip'"},
    ]
    assert report["destinations"] == {"data": None, "quarantine": "quarantine/mixed.csv"}


def test_split_policy_promotes_valid_rows_and_quarantines_the_rest(
    bucket: storage.Bucket, function_env: Callable
) -> None:
    function_env(invalid_rows_policy="split")
    source = upload(bucket, "incoming/mixed.csv", MIXED_CSV)

    ingest_upload(event_for(source))

    assert names(bucket) == ["data/mixed.csv", "quarantine/mixed.csv", "quarantine/mixed.csv.error.json"]
    valid = bucket.blob("data/mixed.csv").download_as_bytes()
    assert _rows(valid) == [
        [*iris.FEATURES, iris.LABEL],
        ["5.1", "3.5", "1.4", "0.2", "setosa"],
        ["5.9", "2.8", "4.3", "1.3", "versicolor"],
    ]
    invalid = bucket.blob("quarantine/mixed.csv").download_as_bytes()
    assert _rows(invalid)[1:] == [["abc", "3.5", "1.4", "0.2", "setosa"], ["6.7", "3.1", "5.8", "2.2", "tulip"]]
    report = _report(bucket, "quarantine/mixed.csv.error.json")
    assert (report["policy"], report["outcome"]) == ("split", "split")
    assert report["destinations"] == {"data": "data/mixed.csv", "quarantine": "quarantine/mixed.csv"}
    assert [e["row"] for e in report["errors"]] == [3, 5]


def test_split_keeps_the_header_when_blank_lines_precede_it(bucket: storage.Bucket, function_env: Callable) -> None:
    function_env(invalid_rows_policy="split")
    ingest_upload(event_for(upload(bucket, "incoming/mixed.csv", b"\r\n \n" + MIXED_CSV)))

    invalid = bucket.blob("quarantine/mixed.csv").download_as_bytes()
    assert _rows(invalid)[0] == [*iris.FEATURES, iris.LABEL]


def test_split_policy_with_no_valid_row_quarantines_the_original_file(
    bucket: storage.Bucket, function_env: Callable
) -> None:
    function_env(invalid_rows_policy="split")
    content = b"sepal_length,sepal_width,petal_length,petal_width,species\n-1,3,1,0.2,setosa\n"
    ingest_upload(event_for(upload(bucket, "incoming/bad.csv", content)))

    assert names(bucket) == ["quarantine/bad.csv", "quarantine/bad.csv.error.json"]
    assert bucket.blob("quarantine/bad.csv").download_as_bytes() == content


HEADER = b"sepal_length,sepal_width,petal_length,petal_width,species\n"
FATAL = {
    "not-utf8": (HEADER + "5.1,3.5,1.4,0.2,sétosa\n".encode("latin-1"), "not UTF-8"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00", "not UTF-8"),
    "empty": (b"", "empty file"),
    "header-only": (HEADER, "header only"),
    "json-not-csv": (b'{"sepal_length": 5.1, "species": "setosa"}\n', "missing columns"),
    "huge-field": (
        HEADER + b"5.1,3.5,1.4,0.2," + b"x" * 200_000 + b"\n",
        "line 2: a record longer than 65536 characters",
    ),
    "duplicate-column": (b"sepal_length,SepalLengthCm,sepal_width,petal_length,petal_width,species\n", "duplicate"),
}


@pytest.mark.parametrize("kind", sorted(FATAL))
def test_unusable_files_are_quarantined_whole_with_a_report(
    bucket: storage.Bucket, function_env: Callable, kind: str
) -> None:
    content, reason = FATAL[kind]
    source = upload(bucket, f"incoming/{kind}.csv", content, content_type="application/octet-stream")

    ingest_upload(event_for(source))

    assert names(bucket) == [f"quarantine/{kind}.csv", f"quarantine/{kind}.csv.error.json"]
    quarantined = bucket.get_blob(f"quarantine/{kind}.csv")
    assert quarantined.download_as_bytes() == content
    assert quarantined.content_type == "application/octet-stream"
    report = _report(bucket, f"quarantine/{kind}.csv.error.json")
    assert reason in report["reason"]
    assert report["outcome"] == "quarantined"
    assert report["source"]["generation"] == source.generation


def test_file_over_max_upload_bytes_is_quarantined_unread(bucket: storage.Bucket, function_env: Callable) -> None:
    function_env(max_upload_bytes="64")
    source = upload(bucket, "incoming/big.csv", VALID_CSV)

    ingest_upload(event_for(source))

    assert names(bucket) == ["quarantine/big.csv", "quarantine/big.csv.error.json"]
    copy = bucket.get_blob("quarantine/big.csv")
    assert copy.download_as_bytes() == VALID_CSV
    assert copy.metadata[SOURCE_GENERATION] == str(source.generation)
    report = _report(bucket, "quarantine/big.csv.error.json")
    assert report["reason"] == f"file is {len(VALID_CSV)} bytes, larger than MAX_UPLOAD_BYTES=64"
    assert report["rows_total"] == 0


def gzip_upload(bucket: storage.Bucket, name: str, data: bytes) -> storage.Blob:
    blob = bucket.blob(name)
    blob.content_encoding = "gzip"
    blob.upload_from_string(data, content_type="text/csv")
    return blob


def test_a_gzip_bomb_is_quarantined_as_stored_without_inflating_it(
    bucket: storage.Bucket, function_env: Callable
) -> None:
    function_env(max_upload_bytes="1048576")
    bomb = gzip.compress(VALID_CSV + b"5.1,3.5,1.4,0.2,setosa\n" * 2_000_000)  # 48 MB of CSV in ~100 KB
    source = gzip_upload(bucket, "incoming/bomb.csv", bomb)
    assert source.size < 1048576

    ingest_upload(event_for(source))

    assert names(bucket) == ["quarantine/bomb.csv", "quarantine/bomb.csv.error.json"]
    report = _report(bucket, "quarantine/bomb.csv.error.json")
    assert (
        report["reason"]
        == f"gzip content of {source.size} bytes inflates past MAX_UPLOAD_BYTES=1048576 or is not valid gzip"
    )
    copy = bucket.get_blob("quarantine/bomb.csv")
    assert copy.download_as_bytes(raw_download=True) == bomb


def test_a_small_gzip_encoded_csv_is_promoted_inflated(bucket: storage.Bucket, function_env: Callable) -> None:
    function_env(max_upload_bytes="65536")
    source = gzip_upload(bucket, "incoming/small.csv", gzip.compress(VALID_CSV))

    ingest_upload(event_for(source))

    assert names(bucket) == ["data/small.csv"]
    promoted = bucket.get_blob("data/small.csv")
    assert promoted.content_encoding is None
    assert promoted.download_as_bytes() == CANONICAL_CSV


@pytest.mark.parametrize(
    "name",
    ["data/iris.csv", "quarantine/x.csv", "quarantine/x.csv.error.json", "models/m.pkl", "incoming/", "iris.csv"],
)
def test_objects_outside_incoming_are_ignored(bucket: storage.Bucket, function_env: Callable, name: str) -> None:
    blob = upload(bucket, name, MIXED_CSV)
    before = snapshot(bucket)

    ingest_upload(event_for(blob))

    assert snapshot(bucket) == before


def test_event_from_another_bucket_is_ignored(
    bucket: storage.Bucket, storage_client: storage.Client, function_env: Callable
) -> None:
    other = storage_client.create_bucket(f"{bucket.name}-other")
    blob = upload(other, "incoming/iris.csv", VALID_CSV)

    ingest_upload(event_for(blob))

    assert names(other) == ["incoming/iris.csv"]
    assert names(bucket) == []
