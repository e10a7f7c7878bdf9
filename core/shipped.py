"""Shipped log files: the format predictor pods write and the trainer's feedback joiner reads.

A predictor pod's serving processes append records to spool files; its model agent gzips each closed file and
uploads it once, create-only, date-partitioned by the UTC day of the file's first record::

    <prefix>date=YYYY-MM-DD/<pod>-<stem>.jsonl.gz      stem = <YYYYmmddTHHMMSS>-<writer token>-<sequence>

The stem's time is that of the file's first record, so the name alone tells the joiner how old a file's records are.
Every line is one JSON object with ``schema`` (``SCHEMA``), ``kind`` (``Kind``), ``id`` and ``time`` (``iso_time``);
the predictor's predictor.predlog.record writes them, the trainer's trainer.feedback.records reads them.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from enum import StrEnum

SCHEMA = 1
"""Format version written in every line; a reader refuses lines of another one."""
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""A record's ``time``: ISO 8601 in UTC with microseconds, e.g. 2026-12-04T22:05:07.123456Z."""
STEM_TIME_FORMAT = "%Y%m%dT%H%M%S"
STEM = re.compile(r"\d{8}T\d{6}-[0-9a-f]{12}-\d{6}")
"""A spool file's stem (the UTC second of its first record, the writer's token, its sequence number)."""
SUFFIX = ".jsonl.gz"
_SHIPPED = re.compile(rf"-({STEM.pattern}){re.escape(SUFFIX)}$")


class Kind(StrEnum):
    """What a line records."""

    ANSWER = "answer"
    """A prediction served: version, route, features, classes, probabilities (one entry per instance)."""
    REFUSAL = "refusal"
    """A request refused: route, reason, status, the version serving then; no features."""
    FEEDBACK = "feedback"
    """The true class (``label``) of row ``row`` of the prediction ``id``, and when the predictor received it."""


_second: tuple[int, str] = (-1, "")
"""The last whole second formatted (a writer formats thousands of records within one second)."""


def _second_text(second: int) -> str:
    global _second
    cached = _second
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return cached[1]


def iso_time(seconds: float) -> str:
    """`seconds` since the epoch in TIME_FORMAT."""
    second = int(seconds)
    micros = round((seconds - second) * 1_000_000)
    if micros == 1_000_000:
        second, micros = second + 1, 0
    return f"{_second_text(second)}.{micros:06d}Z"


def parse_time(text: object) -> float:
    """Seconds since the epoch of a TIME_FORMAT time (ValueError for anything else)."""
    if not isinstance(text, str):
        raise ValueError("time is not a string")
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC).timestamp()


def day(seconds: float) -> str:
    """The UTC date of a moment, YYYY-MM-DD: the partition a file whose first record it is ships under."""
    return _second_text(int(seconds))[:10]


def partition(prefix: str, seconds: float) -> str:
    """The folder the files whose first record is on the UTC day of `seconds` ship to."""
    return f"{prefix}date={day(seconds)}/"


def stem(first: float, token: str, sequence: int) -> str:
    """The stem of a writer's `sequence`-th spool file, whose first record is at `first`."""
    return f"{time.strftime(STEM_TIME_FORMAT, time.gmtime(first))}-{token}-{sequence:06d}"


def stem_day(stem_text: str) -> str:
    """YYYY-MM-DD of the first record of the spool file `stem_text`."""
    return f"{stem_text[0:4]}-{stem_text[4:6]}-{stem_text[6:8]}"


def object_name(prefix: str, pod: str, stem_text: str) -> str:
    """Where pod `pod`'s spool file `stem_text` lands (so a retried upload names the same object)."""
    return f"{prefix}date={stem_day(stem_text)}/{pod}-{stem_text}{SUFFIX}"


def file_time(name: str) -> float | None:
    """The UTC second of a shipped file's first record, from its object name; None for any other name."""
    match = _SHIPPED.search(name)
    if match is None:
        return None
    return datetime.strptime(match.group(1)[:15], STEM_TIME_FORMAT).replace(tzinfo=UTC).timestamp()
