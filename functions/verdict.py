"""The pure decision for one uploaded file: what goes to data/, what to quarantine/, and the report saying why."""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from core import csvscan
from core.csvscan import CsvReport, Limits, Row
from functions.settings import Policy

Status = Literal["promoted", "split", "quarantined"]


@dataclass(frozen=True)
class Verdict:
    """Where the content of one file goes; `copy_source` quarantines the source object itself, unread."""

    status: Status
    report: CsvReport
    reason: str | None = None
    data: bytes | None = None
    quarantine: bytes | None = None
    copy_source: bool = False

    @property
    def quarantines(self) -> bool:
        return self.quarantine is not None or self.copy_source

    @property
    def depends_on_policy(self) -> bool:
        """True when the file has invalid rows but is otherwise usable (the policy decides its fate)."""
        return self.report.fatal is None and self.report.errors_total > 0


def fatal_reason(report: CsvReport) -> str | None:
    """Why the whole file is unusable, or None; a file that yields no row at all is never usable."""
    if report.fatal is None and report.rows_total == 0:
        return "no data rows"
    return report.fatal


def judge(content: bytes, policy: Policy, limits: Limits) -> Verdict:
    """Validate `content` with the shared schema and apply the invalid-rows policy (no row is kept in memory)."""
    report = CsvReport()
    for _ in csvscan.scan(io.BytesIO(content), report, limits):
        pass
    fatal = fatal_reason(report)
    if fatal is not None:
        return Verdict("quarantined", report, fatal, quarantine=content)
    if report.errors_total == 0:
        return Verdict("promoted", report, data=canonical(content, limits))
    reason = f"{report.rows_invalid} of {report.rows_total} rows invalid"
    if policy == "reject" or report.rows_valid == 0:
        return Verdict("quarantined", report, reason, quarantine=content)
    data, quarantine = split(content, limits)
    return Verdict("split", report, reason, data=data, quarantine=quarantine)


def _rows(content: bytes, limits: Limits, valid: bool) -> Iterator[Row]:
    """The valid (or the invalid) rows of `content`, streamed from a scan of their own."""
    return (row for row in csvscan.scan(io.BytesIO(content), CsvReport(), limits) if row.valid == valid)


def canonical(content: bytes, limits: Limits) -> bytes:
    """The valid rows of `content` as data/ stores them: the schema's header, its five columns, normalised values."""
    return csvscan.to_csv(_rows(content, limits, valid=True))


def split(content: bytes, limits: Limits) -> tuple[bytes, bytes]:
    """Valid rows as canonical CSV and invalid rows as they arrived (under the original header)."""
    invalid = csvscan.raw_csv(csvscan.read_header(content, limits), _rows(content, limits, valid=False))
    return canonical(content, limits), invalid


def inflate(stored: bytes, limit: int) -> bytes | None:
    """Gzip-encoded content inflated to at most `limit` bytes; None when it inflates past that or is not gzip."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        content = inflater.decompress(stored, limit + 1)
    except zlib.error:
        return None
    return None if len(content) > limit or inflater.unconsumed_tail else content


def inflates_too_large(size: int, limit: int) -> Verdict:
    """A gzip-encoded file that inflates past MAX_UPLOAD_BYTES (or is not gzip): quarantined as stored."""
    reason = f"gzip content of {size} bytes inflates past MAX_UPLOAD_BYTES={limit} or is not valid gzip"
    return Verdict("quarantined", CsvReport(fatal=reason), reason, copy_source=True)


def too_large(size: int, limit: int) -> Verdict:
    """A file over MAX_UPLOAD_BYTES: quarantined as it is, never downloaded."""
    reason = f"file is {size} bytes, larger than MAX_UPLOAD_BYTES={limit}"
    return Verdict("quarantined", CsvReport(fatal=reason), reason, copy_source=True)


def report_json(verdict: Verdict, source: dict[str, Any], policy: Policy, destinations: dict[str, str | None]) -> bytes:
    """The `<name>.error.json` report: source object and generation, policy, outcome, counts and row errors."""
    body = {
        "source": source,
        "policy": policy,
        "outcome": verdict.status,
        "reason": verdict.reason,
        "destinations": destinations,
        **verdict.report.as_dict(),
        "time": datetime.now(UTC).isoformat(),
    }
    return json.dumps(body, indent=2).encode()
