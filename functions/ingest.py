"""Ingest one uploaded object: validate it, write its data/ and quarantine/ outputs once, then delete the upload.

Every step is safe to repeat: outputs are create-only and tagged with the source generation, and the
upload is deleted only if it is still that generation. A redelivered event therefore either finishes
the work an earlier delivery left halfway or finds nothing to do.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, get_args

from google.api_core import exceptions as gexc
from google.cloud import storage

from core import gcs, layout
from functions import verdict as verdicts
from functions.outputs import REPORT_SUFFIX, Folder, Source, SourceGone, Writer
from functions.settings import IngestSettings, Policy

log = logging.getLogger(__name__)
_LEVELS = {"promoted": logging.INFO, "stale": logging.INFO, "ignored": logging.DEBUG}


@dataclass
class IngestResult:
    """What happened to one event: status promoted, split, quarantined, stale or ignored, and where things went."""

    status: str
    source: str
    generation: int | None
    reason: str | None = None
    data: str | None = None
    quarantine: str | None = None
    report: str | None = None
    rows_total: int = 0
    rows_valid: int = 0
    rows_invalid: int = 0


def wanted(name: str) -> bool:
    """Only uploads under incoming/ are ingested: never our own data/ and quarantine/ writes, nor folders."""
    return name.startswith(layout.INCOMING) and not name.endswith("/")


def handle(client: storage.Client, event: Mapping[str, Any], settings: IngestSettings) -> IngestResult:
    """Ingest the object of one `object.finalized` event (its data: the object resource) and log the result."""
    bucket, name = str(event.get("bucket", "")), str(event.get("name", ""))
    generation = int(event["generation"]) if str(event.get("generation", "")).isdigit() else None
    if bucket != settings.gcs_bucket:
        result = IngestResult("ignored", name, generation, f"bucket {bucket!r} is not GCS_BUCKET")
    elif generation is None:
        result = IngestResult("ignored", name, generation, "event without an object generation")
    else:
        result = ingest(client.bucket(bucket), name, generation, settings)
    level = _LEVELS.get(result.status, logging.WARNING)
    log.log(level, "ingest %s: %s", result.status, name, extra={"ingest": asdict(result)})
    return result


def ingest(bucket: storage.Bucket, name: str, generation: int, settings: IngestSettings) -> IngestResult:
    """Validate `name` at `generation`, promote it to data/ or quarantine/; a no-op unless that generation is live."""
    if not wanted(name):
        return IngestResult("ignored", name, generation, "not under incoming/")
    retry = gcs.retry(settings)
    blob = gcs.call(retry, bucket.get_blob, name)
    if blob is None or blob.generation != generation:
        return IngestResult(
            "stale", name, generation, "this generation no longer exists (already ingested or replaced)"
        )
    source = Source(bucket, name, generation, retry)
    try:
        result = _write_outputs(source, blob, settings)
    except SourceGone:
        return IngestResult("stale", name, generation, "this generation disappeared while it was being ingested")
    # NotFound: a concurrent delivery deleted it; PreconditionFailed: replaced by a new upload with its own event.
    with contextlib.suppress(gexc.NotFound, gexc.PreconditionFailed):
        gcs.call(retry, bucket.delete_blob, name, if_generation_match=generation)
    return result


def _write_outputs(source: Source, blob: storage.Blob, settings: IngestSettings) -> IngestResult:
    data_dir = Folder(source, layout.DATA, _csv_name(source.relative))
    quarantine = Folder(source, layout.QUARANTINE, source.relative)
    policy, verdict = _decide(source, blob, settings, data_dir, quarantine)
    rows = verdict.report
    result = IngestResult(verdict.status, source.name, source.generation, verdict.reason)
    result.rows_total, result.rows_valid, result.rows_invalid = rows.rows_total, rows.rows_valid, rows.rows_invalid
    if verdict.data is not None:
        write = Writer(source, verdict.data, "text/csv", source.tags("data", policy))
        result.data = data_dir.place("data", data_dir.names(), write)
    if verdict.quarantines:
        kind = "text/csv" if verdict.status == "split" else blob.content_type or "application/octet-stream"
        write = Writer(source, verdict.quarantine, kind, source.tags("quarantine", policy))
        result.quarantine = quarantine.place("quarantine", quarantine.names(("", REPORT_SUFFIX)), write)
        places = {"data": result.data, "quarantine": result.quarantine}
        report = verdicts.report_json(verdict, _describe(blob), policy, places)
        write = Writer(source, report, "application/json", source.tags("report", policy))
        result.report = quarantine.place("report", [result.quarantine + REPORT_SUFFIX], write)
    return result


def _decide(
    source: Source, blob: storage.Blob, settings: IngestSettings, *folders: Folder
) -> tuple[Policy, verdicts.Verdict]:
    """The verdict on the pinned generation. An earlier delivery's policy wins (a settings change cannot split
    one file two ways); the folders are listed for it only when the policy matters."""
    size, limit = blob.size or 0, settings.max_upload_bytes
    if size > limit:
        return settings.invalid_rows_policy, verdicts.too_large(size, limit)
    pinned = source.bucket.blob(source.name, generation=source.generation)
    try:  # the bytes as stored (at most `limit`): a gzip Content-Encoding is inflated below, bounded
        stored = gcs.call(source.retry, pinned.download_as_bytes, raw_download=True)
    except gexc.NotFound as e:
        raise SourceGone(source.name) from e
    content = verdicts.inflate(stored, limit) if (blob.content_encoding or "").lower() == "gzip" else stored
    if content is None:
        return settings.invalid_rows_policy, verdicts.inflates_too_large(size, limit)
    limits = settings.limits
    verdict = verdicts.judge(content, settings.invalid_rows_policy, limits)
    if not verdict.depends_on_policy:
        return settings.invalid_rows_policy, verdict
    earlier = next((p for f in folders if (p := f.policy()) is not None), None)
    policy = next((p for p in get_args(Policy) if p == earlier), settings.invalid_rows_policy)
    return policy, verdict if policy == settings.invalid_rows_policy else verdicts.judge(content, policy, limits)


def _csv_name(relative: str) -> str:
    """The data/ name: the trainer reads only `*.csv`, so other names get the extension added."""
    return relative if relative.lower().endswith(".csv") else relative + ".csv"


def _describe(blob: storage.Blob) -> dict[str, Any]:
    return {"bucket": blob.bucket.name, "object": blob.name, "generation": blob.generation, "size": blob.size}
