"""CSV scanning: reads a training CSV (any common header spelling of the iris columns) row by row within size limits.

Scanning never raises on bad data: it returns row-level errors and a file-level verdict. The columns, species and
measurement rules are core.iris's.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from core.iris import CLASSES, FEATURES, LABEL, MAX_CM, check_measurement

MAX_REPORTED_ERRORS = 1000

_HEADER_ALIASES = {
    "sepallength": "sepal_length",
    "sepalwidth": "sepal_width",
    "petallength": "petal_length",
    "petalwidth": "petal_width",
    "species": LABEL,
    "class": LABEL,
    "variety": LABEL,
    "label": LABEL,
}


@dataclass(frozen=True)
class Limits:
    """Size limits of one CSV file."""

    max_bytes: int = 100 * 1024 * 1024
    max_rows: int = 5_000_000
    max_record_chars: int = 64 * 1024
    """Longest CSV record (one line, or several inside quotes), checked before csv builds its fields."""
    max_fields: int = 1000
    """Most fields in one record, counted by its commas before csv builds them (a comma in quotes counts too)."""


@dataclass(frozen=True)
class RowError:
    """One problem in one row: 1-based line number in the file (header is line 1), column, reason."""

    row: int
    column: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "reason": self.reason}


@dataclass
class CsvReport:
    """What validation found in one file."""

    rows_total: int = 0
    rows_valid: int = 0
    errors_total: int = 0
    errors: list[RowError] = field(default_factory=list)
    fatal: str | None = None
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def rows_invalid(self) -> int:
        return self.rows_total - self.rows_valid

    @property
    def ok(self) -> bool:
        return self.fatal is None and self.errors_total == 0 and self.rows_valid > 0

    def add(self, error: RowError) -> None:
        self.errors_total += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fatal": self.fatal,
            "rows_total": self.rows_total,
            "rows_valid": self.rows_valid,
            "rows_invalid": self.rows_invalid,
            "errors_total": self.errors_total,
            "errors": [e.as_dict() for e in self.errors],
            "errors_truncated": self.errors_total > len(self.errors),
            "ignored_columns": self.ignored_columns,
        }


@dataclass(frozen=True)
class Row:
    """A data row: its raw fields and either parsed values or its errors."""

    number: int
    raw: list[str]
    values: tuple[float, ...] | None
    label: str | None

    @property
    def valid(self) -> bool:
        return self.values is not None


def canonical_column(name: str) -> str | None:
    """Map a header spelling (`Sepal Length (cm)`, `SepalLengthCm`, `sepal.length`) to its schema name."""
    key = re.sub(r"\(.*?\)", "", name.strip().lower())
    key = re.sub(r"[^a-z]", "", key)
    key = key.removesuffix("cm")
    return _HEADER_ALIASES.get(key)


@functools.lru_cache(maxsize=256)
def canonical_label(text: str) -> str | None:
    """Map `Iris-setosa`, ` SETOSA ` etc. to a class name, or None if unknown."""
    key = text.strip().lower()
    key = re.sub(r"^iris[\s_-]*", "", key)
    return key if key in CLASSES else None


class FileTooLarge(Exception):
    """Raised inside scanning when a stream passes Limits.max_bytes."""


class RecordTooLong(Exception):
    """Raised inside scanning when one CSV record passes Limits.max_record_chars or Limits.max_fields."""


class _Lines:
    """The lines of a text stream for csv.reader, each read with a bound: a record (one line, or several when a
    quoted field holds a line break) stops with RecordTooLong past the limits before csv splits it into fields, so
    no upload, however it is shaped, makes csv build millions of strings."""

    def __init__(self, text: IO[str], limits: Limits) -> None:
        self._text, self._chars, self._fields = text, limits.max_record_chars, limits.max_fields
        self.number = self.chars = self.commas = 0

    def _lines(self) -> Iterator[str]:
        readline, chars, fields = self._text.readline, self._chars, self._fields
        while line := readline(chars + 1):
            self.number += 1
            self.chars += len(line)
            self.commas += line.count(",")
            if self.commas >= fields:
                raise RecordTooLong(f"line {self.number}: a record of more than {fields} fields")
            if self.chars > chars:
                raise RecordTooLong(f"line {self.number}: a record longer than {chars} characters")
            yield line

    def records(self) -> Iterator[list[str]]:
        """The CSV records of the stream; each one's bounds start afresh."""
        for record in csv.reader(self._lines()):
            self.chars = self.commas = 0
            yield record


class _Counted(io.RawIOBase):
    """A read-only byte stream that stops with FileTooLarge past `limit` bytes."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream, self._limit, self.count = stream, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        self.count += len(data)
        if self.count > self._limit:
            raise FileTooLarge(f"file exceeds {self._limit} bytes")
        buffer[: len(data)] = data
        return len(data)


def _header_map(header: list[str], report: CsvReport) -> dict[str, int] | None:
    """Column index of each schema name; sets report.fatal and returns None when unusable."""
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        canonical = canonical_column(name)
        if canonical is None:
            report.ignored_columns.append(name)
        elif canonical in positions:
            report.fatal = f"duplicate column {canonical!r}"
            return None
        else:
            positions[canonical] = index
    missing = [c for c in (*FEATURES, LABEL) if c not in positions]
    if missing:
        report.fatal = f"missing columns: {', '.join(missing)} (header: {', '.join(header)[:200]})"
        return None
    return positions


def _parse_fields(
    raw: list[str], positions: dict[str, int], number: int
) -> tuple[list[float], str | None, list[RowError]]:
    errors: list[RowError] = []
    values: list[float] = []
    for name in FEATURES:
        text = raw[positions[name]].strip()
        try:
            value = float(text)
        except ValueError:
            errors.append(RowError(number, name, f"not a number: {text[:40]!r}"))
            continue
        problem = None if 0.0 <= value <= MAX_CM else check_measurement(value)  # fast path for the common case
        if problem:
            errors.append(RowError(number, name, problem))
        values.append(value)
    label = canonical_label(raw[positions[LABEL]])
    if label is None:
        errors.append(RowError(number, LABEL, f"unknown species {raw[positions[LABEL]].strip()[:40]!r}"))
    return values, label, errors


def _parse_row(raw: list[str], positions: dict[str, int], number: int, report: CsvReport) -> Row:
    report.rows_total += 1
    if len(raw) <= max(positions.values()):
        report.add(RowError(number, None, f"expected {len(positions)}+ fields, got {len(raw)}"))
        return Row(number, raw, None, None)
    values, label, errors = _parse_fields(raw, positions, number)
    for error in errors:
        report.add(error)
    if errors:
        return Row(number, raw, None, None)
    report.rows_valid += 1
    return Row(number, raw, tuple(values), label)


def _rows(
    lines: _Lines, records: Iterator[list[str]], positions: dict[str, int], report: CsvReport, limits: Limits
) -> Iterator[Row]:
    for raw in records:
        if not raw or (not raw[0].strip() and all(not f.strip() for f in raw)):
            continue
        if report.rows_total >= limits.max_rows:
            report.fatal = f"more than {limits.max_rows} rows"
            return
        yield _parse_row(raw, positions, lines.number, report)


def scan(stream: IO[bytes], report: CsvReport, limits: Limits = Limits()) -> Iterator[Row]:
    """Yield every data row of a CSV byte stream, filling `report`; stops early on a fatal problem.

    A fatal problem (not UTF-8, not CSV, no usable header, too large, a record past the line or field caps) can
    arrive after rows were yielded: callers must check `report.fatal` when the iterator ends.
    """
    text = io.TextIOWrapper(io.BufferedReader(_Counted(stream, limits.max_bytes)), "utf-8-sig", newline="")
    try:
        lines = _Lines(text, limits)
        records = lines.records()
        header = next((r for r in records if any(f.strip() for f in r)), None)  # blank lines before the header
        positions = _header_map(header, report) if header else None
        if header is None:
            report.fatal = "empty file"
        if positions is not None:
            yield from _rows(lines, records, positions, report, limits)
            if report.fatal is None and report.rows_total == 0:
                report.fatal = "no data rows (header only)"
    except UnicodeDecodeError as e:
        report.fatal = f"not UTF-8 text (byte {e.start} of a chunk)"
    except (FileTooLarge, RecordTooLong) as e:
        report.fatal = str(e)
    except csv.Error as e:
        report.fatal = f"not a valid CSV: {e}"


def validate_bytes(data: bytes, limits: Limits = Limits()) -> tuple[list[Row], CsvReport]:
    """Scan an in-memory CSV; returns its rows and report."""
    report = CsvReport()
    rows = list(scan(io.BytesIO(data), report, limits))
    return rows, report


def to_csv(rows: Iterable[Row]) -> bytes:
    """Valid rows as a canonical CSV (schema header, class names) for data/."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*FEATURES, LABEL))
    # + 0.0 turns -0.0 into 0.0: every value written is a plain non-negative number, every label a class name, so
    # no cell of data/ starts with `=`, `+`, `-` or `@` (what a spreadsheet would run as a formula)
    writer.writerows((*(repr(float(v) + 0.0) for v in row.values or ()), row.label) for row in rows)
    return out.getvalue().encode()


def raw_csv(header: list[str], rows: Iterable[Row]) -> bytes:
    """Rows as they arrived, under their original header (for quarantine/)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(row.raw for row in rows)
    return out.getvalue().encode()


def read_header(data: bytes, limits: Limits = Limits()) -> list[str]:
    """The header row as `scan` reads it: the first CSV row that is not blank ([] if none, not UTF-8 or too long)."""
    text = io.TextIOWrapper(io.BytesIO(data), "utf-8-sig", newline="")
    try:
        return next((row for row in _Lines(text, limits).records() if any(f.strip() for f in row)), [])
    except (UnicodeDecodeError, csv.Error, RecordTooLong):
        return []
