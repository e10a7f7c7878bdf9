"""core.csvscan: header spellings, labels, row errors, fatal verdicts, limits and the canonical CSV."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import csvscan, iris
from core.csvscan import Limits, validate_bytes
from core.iris import CLASSES, FEATURES, LABEL

HEADER = "sepal_length,sepal_width,petal_length,petal_width,species\n"


def csv_bytes(*lines: str, header: str = HEADER) -> bytes:
    return (header + "".join(f"{line}\n" for line in lines)).encode()


@pytest.mark.parametrize(
    "header",
    [
        "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm),species",
        "SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm,Species",
        "sepal.length,sepal.width,petal.length,petal.width,variety",
        "Sepal_Length, Sepal_Width ,PETAL_LENGTH,petal_width,class",
    ],
)
def test_common_header_spellings_map_to_the_schema(header: str) -> None:
    rows, report = validate_bytes(csv_bytes("5.1,3.5,1.4,0.2,Iris-setosa", header=header + "\n"))
    assert report.ok, report.as_dict()
    assert rows[0].values == (5.1, 3.5, 1.4, 0.2)
    assert rows[0].label == "setosa"


def test_extra_columns_are_ignored_and_reported_and_order_does_not_matter() -> None:
    header = "Id,Species,PetalWidthCm,PetalLengthCm,SepalWidthCm,SepalLengthCm\n"
    rows, report = validate_bytes(csv_bytes("7,Iris-virginica,2.2,5.8,3.1,6.7", header=header))
    assert report.ok
    assert report.ignored_columns == ["Id"]
    assert rows[0].values == (6.7, 3.1, 5.8, 2.2)
    assert rows[0].label == "virginica"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Iris-setosa", "setosa"), (" SETOSA ", "setosa"), ("iris_versicolor", "versicolor"), ("Virginica", "virginica")],
)
def test_label_spellings(text: str, expected: str) -> None:
    assert csvscan.canonical_label(text) == expected


@pytest.mark.parametrize("text", ["", "rose", "Iris-rose", "setosa2", "iris"])
def test_unknown_labels(text: str) -> None:
    assert csvscan.canonical_label(text) is None


@pytest.mark.parametrize(
    ("line", "column", "reason"),
    [
        ("abc,3.5,1.4,0.2,setosa", "sepal_length", "not a number"),
        ("5.1,,1.4,0.2,setosa", "sepal_width", "not a number"),
        ("5.1,3.5,nan,0.2,setosa", "petal_length", "not a finite number"),
        ("5.1,3.5,1.4,inf,setosa", "petal_width", "not a finite number"),
        ("-5.1,3.5,1.4,0.2,setosa", "sepal_length", "negative measurement"),
        ("5.1,3.5,1.4,250,setosa", "petal_width", "larger than 100 cm"),
        ("5.1,3.5,1.4,0.2,rose", LABEL, "unknown species"),
        ("5.1,3.5,1.4", None, "expected 5+ fields, got 3"),
    ],
)
def test_each_row_error_names_row_and_column(line: str, column: str | None, reason: str) -> None:
    rows, report = validate_bytes(csv_bytes("5.0,3.4,1.5,0.2,setosa", line, "6.0,2.9,4.5,1.5,versicolor"))
    assert report.fatal is None
    assert (report.rows_total, report.rows_valid, report.rows_invalid, report.errors_total) == (3, 2, 1, 1)
    error = report.errors[0]
    assert (error.row, error.column) == (3, column)
    assert error.reason.startswith(reason)
    assert [r.valid for r in rows] == [True, False, True]
    assert not report.ok


def test_several_errors_in_one_row_are_all_reported() -> None:
    _, report = validate_bytes(csv_bytes("x,-1,1.4,0.2,rose"))
    assert [(e.row, e.column) for e in report.errors] == [(2, "sepal_length"), (2, "sepal_width"), (2, LABEL)]
    assert report.rows_valid == 0


def test_zero_is_a_valid_measurement_and_max_cm_is_inclusive() -> None:
    _, report = validate_bytes(csv_bytes(f"0,0,{iris.MAX_CM},0.0,setosa"))
    assert report.ok


def test_reported_errors_are_capped_but_counted() -> None:
    lines = ["bad,3.5,1.4,0.2,setosa"] * (csvscan.MAX_REPORTED_ERRORS + 5)
    _, report = validate_bytes(csv_bytes(*lines))
    assert report.errors_total == csvscan.MAX_REPORTED_ERRORS + 5
    assert len(report.errors) == csvscan.MAX_REPORTED_ERRORS
    assert report.as_dict()["errors_truncated"] is True


def test_bom_blank_lines_and_crlf_are_tolerated() -> None:
    data = b"\xef\xbb\xbf\r\n" + HEADER.encode().replace(b"\n", b"\r\n") + b"\r\n5.1,3.5,1.4,0.2,setosa\r\n ,  \r\n\r\n"
    rows, report = validate_bytes(data)
    assert report.ok, report.as_dict()
    assert [(r.number, r.label) for r in rows] == [(4, "setosa")]


@pytest.mark.parametrize(
    ("data", "fatal"),
    [
        (b"", "empty file"),
        (b"\n\n  \n", "empty file"),
        (HEADER.encode(), "no data rows (header only)"),
        (b"sepal_length,sepal_width,petal_length,species\n1,2,3,setosa\n", "missing columns: petal_width"),
        (b"SepalLengthCm,sepal_length,sepal_width,petal_length,petal_width,species\n", "duplicate column"),
        (HEADER.encode() + b"5.1,3.5,1.4,0.2,setosa\n\xff\xfe\n", "not UTF-8 text"),
        (HEADER.encode() + b'5.1,3.5,1.4,0.2,"' + b"x" * 200_000 + b'"\n', "line 2: a record longer than"),
    ],
)
def test_fatal_file_problems(data: bytes, fatal: str) -> None:
    _, report = validate_bytes(data)
    assert report.fatal is not None
    assert report.fatal.startswith(fatal)
    assert not report.ok


def test_byte_limit_is_fatal() -> None:
    data = csv_bytes(*["5.1,3.5,1.4,0.2,setosa"] * 100)
    _, report = validate_bytes(data, Limits(max_bytes=len(data) - 1))
    assert report.fatal == f"file exceeds {len(data) - 1} bytes"
    assert validate_bytes(data, Limits(max_bytes=len(data)))[1].ok


def test_row_limit_is_fatal_and_stops_scanning() -> None:
    rows, report = validate_bytes(csv_bytes(*["5.1,3.5,1.4,0.2,setosa"] * 11), Limits(max_rows=10))
    assert report.fatal == "more than 10 rows"
    assert len(rows) == 10
    assert validate_bytes(csv_bytes(*["5.1,3.5,1.4,0.2,setosa"] * 10), Limits(max_rows=10))[1].ok


def test_to_csv_writes_the_canonical_header_and_round_trips() -> None:
    source = csv_bytes("5.1,3.5,1.4,0.2,Iris-setosa", "bad,1,1,1,setosa", "6.7,3.1,5.8,2.2,VIRGINICA",
                       header="SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm,Species\n")  # fmt: skip
    rows, _ = validate_bytes(source)
    out = csvscan.to_csv(r for r in rows if r.valid)
    assert out.splitlines()[0].decode() == ",".join((*FEATURES, LABEL))
    again, report = validate_bytes(out)
    assert report.ok
    assert [(r.values, r.label) for r in again] == [
        ((5.1, 3.5, 1.4, 0.2), "setosa"),
        ((6.7, 3.1, 5.8, 2.2), "virginica"),
    ]


def test_raw_csv_keeps_rows_as_they_arrived() -> None:
    header = "SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm,Species"
    rows, _ = validate_bytes(csv_bytes("bad,1,1,1,Iris-setosa", header=header + "\n"))
    raw = csvscan.raw_csv(csvscan.read_header((header + "\n").encode()), rows)
    assert raw.decode() == f"{header}\nbad,1,1,1,Iris-setosa\n"


def test_read_header() -> None:
    assert csvscan.read_header(b"\xef\xbb\xbfa,b\n1,2\n") == ["a", "b"]
    assert csvscan.read_header(b"") == []
    assert csvscan.read_header(b"\xff\xfe,x\n") == []
    assert csvscan.read_header(b"\n  ,\n\na,b\n1,2\n") == ["a", "b"]  # the row scan() takes as the header


measurement = st.floats(min_value=0, max_value=iris.MAX_CM, allow_nan=False, allow_infinity=False)
valid_row = st.tuples(st.tuples(measurement, measurement, measurement, measurement), st.sampled_from(CLASSES))


@settings(max_examples=200, deadline=None)
@given(st.lists(valid_row, min_size=1, max_size=20))
def test_property_valid_rows_round_trip_through_to_csv(generated: list) -> None:
    rows = [csvscan.Row(i + 2, [], values, label) for i, (values, label) in enumerate(generated)]
    parsed, report = validate_bytes(csvscan.to_csv(rows))
    assert report.ok, report.as_dict()
    assert [(r.values, r.label) for r in parsed] == [(tuple(v), label) for v, label in generated]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000) | st.text(max_size=500).map(lambda t: (HEADER + t).encode()))
def test_property_arbitrary_bytes_never_raise(data: bytes) -> None:
    rows, report = validate_bytes(data, Limits(max_bytes=1500, max_rows=50))
    assert (report.rows_total, report.rows_valid) == (len(rows), sum(r.valid for r in rows))
    assert report.ok == (report.fatal is None and report.errors_total == 0 and report.rows_valid > 0)
    report.as_dict()


def test_a_single_line_of_millions_of_fields_is_refused_before_csv_splits_it() -> None:
    line = b"5.1," * 2_000_000  # 8 MB, 2 M fields: csv.reader would build 2 M strings for this one row
    _, report = validate_bytes(line + b"\n")
    assert report.fatal == "line 1: a record of more than 1000 fields"
    _, report = validate_bytes(csv_bytes("5.1,3.5,1.4,0.2,setosa") + line)
    assert report.fatal == "line 3: a record of more than 1000 fields"
    assert report.rows_valid == 1


def test_a_long_line_without_separators_is_refused_past_the_record_cap() -> None:
    _, report = validate_bytes(csv_bytes("5.1,3.5,1.4,0.2,setosa", "x" * 70_000), Limits(max_record_chars=65_536))
    assert report.fatal == "line 3: a record longer than 65536 characters"


def test_a_record_spread_over_lines_by_quotes_is_bounded_as_a_whole() -> None:
    # every line has 10 commas, but the quotes join all of them into one record of 2,000 fields
    record = '1,1,1,1,1,1,1,1,1,1,"\n",' * 200 + "setosa"
    _, report = validate_bytes(csv_bytes(record))
    assert report.fatal is not None
    assert report.fatal.endswith("a record of more than 1000 fields")
    long = '5.1,3.5,1.4,0.2,"' + "x\n" * 40_000 + '"'  # line 2 has 19 characters, the next ones 2 each
    assert validate_bytes(csv_bytes(long))[1].fatal == "line 32761: a record longer than 65536 characters"


def test_records_at_the_caps_pass_and_each_record_starts_afresh() -> None:
    limits = Limits(max_record_chars=64, max_fields=6)
    rows, report = validate_bytes(csv_bytes(*["5.1,3.5,1.4,0.2,setosa,note"] * 100), limits)
    assert report.ok, report.as_dict()
    assert len(rows) == 100
    _, report = validate_bytes(csv_bytes("5.1,3.5,1.4,0.2,setosa,note,more"), limits)
    assert report.fatal == "line 2: a record of more than 6 fields"


def test_read_header_is_bounded_too() -> None:
    assert csvscan.read_header(b"5.1," * 100_000) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["-0", "-0.0", "0", "1e-7", "+5.1", " 100 ", "0x1p-2"]),
                          st.sampled_from(["setosa", " Iris-Virginica ", "VERSICOLOR"]),
                          st.sampled_from(["=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", ""])),
                min_size=1, max_size=10))  # fmt: skip
def test_property_no_canonical_cell_starts_like_a_formula(generated: list) -> None:
    lines = [f"{v},{v},{v},{v},{label},{extra}" for v, label, extra in generated]
    rows, report = validate_bytes(csv_bytes(*lines, header=HEADER.strip() + ",notes\n"))
    out = csvscan.to_csv(r for r in rows if r.valid)
    cells = [cell for line in out.decode().splitlines()[1:] for cell in line.split(",")]
    assert len(cells) == 5 * report.rows_valid
    assert not [c for c in cells if c[:1] in "=+-@"]
