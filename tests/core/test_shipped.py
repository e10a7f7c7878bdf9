"""The shipped log format both sides share: times, days, stems and object names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core import shipped, uuid7

MOMENT = datetime(2026, 12, 4, 23, 59, 59, 250_000, tzinfo=UTC).timestamp()


def test_times_round_trip_to_the_microsecond() -> None:
    text = shipped.iso_time(MOMENT)
    assert text == "2026-12-04T23:59:59.250000Z"
    assert shipped.parse_time(text) == MOMENT
    assert shipped.iso_time(MOMENT + 0.7499995) == "2026-12-05T00:00:00.000000Z"  # rounding carries into the second


@pytest.mark.parametrize("text", [None, 1.5, "2026-12-04T23:59:59Z", "2026-12-04 23:59:59.250000", ""])
def test_other_times_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        shipped.parse_time(text)


def test_a_file_ships_under_the_utc_day_of_its_first_record_and_its_name_tells_that_time() -> None:
    stem = shipped.stem(MOMENT, "0123456789ab", 7)
    assert stem == "20261204T235959-0123456789ab-000007"
    assert shipped.STEM.fullmatch(stem)
    name = shipped.object_name("predictions/", "iris-7d9f-x1", stem)
    assert name == "predictions/date=2026-12-04/iris-7d9f-x1-20261204T235959-0123456789ab-000007.jsonl.gz"
    assert name.startswith(shipped.partition("predictions/", MOMENT))
    assert shipped.file_time(name) == int(MOMENT)
    assert shipped.day(MOMENT + 1) == "2026-12-05"


@pytest.mark.parametrize(
    "name",
    [
        "predictions/date=2026-12-04/notes.txt",
        "predictions/date=2026-12-04/pod-20261204T235959-0123456789ab-000007.jsonl",
        "predictions/date=2026-12-04/pod-20261204T235959-XYZ-000007.jsonl.gz",
        "feedback/accuracy.json",
    ],
)
def test_names_that_are_not_shipped_files_have_no_time(name: str) -> None:
    assert shipped.file_time(name) is None


def test_an_id_issued_at_a_given_time_reads_back_that_time() -> None:
    request_id = uuid7.new(MOMENT)
    assert uuid7.issued_at(request_id) == pytest.approx(MOMENT, abs=0.001)
    assert uuid7.new() != uuid7.new()
