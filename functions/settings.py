"""Ingest function settings (environment variables)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.csvscan import Limits
from core.settings import CommonSettings

Policy = Literal["reject", "split"]


class IngestSettings(CommonSettings):
    """The ingest function: what to do with invalid rows and how large a file it reads."""

    invalid_rows_policy: Policy = "reject"
    """reject: a file with a bad row goes whole to quarantine/; split: valid rows to data/, bad rows to quarantine/."""
    max_upload_bytes: int = Field(32 * 1024 * 1024, gt=0)
    """Largest file read and validated; a larger one is quarantined unread (server-side copy) with a report."""
    max_rows: int = Field(5_000_000, gt=0)
    """Most data rows validated in one file; a longer file is quarantined with a report."""
    max_record_chars: int = Field(64 * 1024, gt=0)
    """Longest CSV record (a line, or several lines inside quotes) in characters, read with this bound before it is
    parsed; a file with a longer one is quarantined with a report."""
    max_fields: int = Field(1000, gt=0)
    """Most fields in one CSV record, counted by its commas before it is parsed (commas inside quotes count too);
    a file with a wider record is quarantined with a report."""

    @property
    def limits(self) -> Limits:
        """The CSV limits of one upload."""
        return Limits(self.max_upload_bytes, self.max_rows, self.max_record_chars, self.max_fields)
