"""The bucket layout: one bucket, its prefixes, and the naming rules of artifacts and evaluation sets."""

from __future__ import annotations

import re
from datetime import UTC, datetime

INCOMING = "incoming/"
"""Where people drop training CSVs."""
DATA = "data/"
"""Validated training CSVs (what the trainer reads)."""
QUARANTINE = "quarantine/"
"""Rejected content, each with a `.error.json` report beside it."""
REPORTS = "reports/"
"""The trainer's reports on data/ files it held back (`reports/data/<name>.excluded.json`)."""
MODELS = "models/"
"""Model artifacts `models/model-<version>.pkl` (and the trainer's claims under `models/claims/`)."""
CLAIMS = MODELS + "claims/"
MODEL_PREFIX = MODELS + "model-"
EVAL = "eval/"
"""Trusted evaluation sets `eval/evalset-<version>.csv`: written by the operator only, read by the trainer."""
EVAL_PREFIX = EVAL + "evalset-"

_VERSION_FORMAT = "%Y%m%dT%H%M%S%fZ"
VERSION_LENGTH = 22
_MODEL_NAME = re.compile(r"^models/model-(\d{8}T\d{12}Z)\.pkl$")
_EVAL_NAME = re.compile(r"^eval/evalset-(\d{8}T\d{12}Z)\.csv$")


def format_version(moment: datetime) -> str:
    """Fixed-width, lexically sortable UTC timestamp, e.g. 20261127T093817123456Z."""
    return moment.astimezone(UTC).strftime(_VERSION_FORMAT)


def version_time(version: str) -> datetime:
    """The UTC moment a version name encodes."""
    return datetime.strptime(version, _VERSION_FORMAT).replace(tzinfo=UTC)


def model_object(version: str) -> str:
    """Object name of the artifact with this version."""
    return f"{MODEL_PREFIX}{version}.pkl"


def model_version(name: str) -> str | None:
    """The version encoded in an artifact's object name, or None if the name is not an artifact."""
    match = _MODEL_NAME.match(name)
    return match.group(1) if match else None


def version_next_chars(partial: str) -> str:
    """The characters that may follow `partial`, the start of a version, in a version ("" once it is whole)."""
    if len(partial) >= VERSION_LENGTH:
        return ""
    return {8: "T", VERSION_LENGTH - 1: "Z"}.get(len(partial), "0123456789")


def eval_object(version: str) -> str:
    """Object name of the evaluation set with this version."""
    return f"{EVAL_PREFIX}{version}.csv"


def eval_version(name: str) -> str | None:
    """The version encoded in an evaluation set's object name, or None if the name is not one."""
    match = _EVAL_NAME.match(name)
    return match.group(1) if match else None
