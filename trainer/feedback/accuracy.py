"""Writing the live accuracy document (core.liveaccuracy: its shape, signature and bounds) after a joiner pass.

`correct` counts joined rows whose logged predicted class equals the feedback's label, `total` all joined rows;
`series` holds the cumulative counts after each pass that changed them, oldest first, thinned evenly to at most
MAX_POINTS (the first and the latest always kept); only the KEEP_VERSIONS newest versions stay, fewer if the document
would outgrow what readers take. `offline` comes from the version's signed lineage (held-out `metrics.accuracy`, the
trusted evaluation set's `evaluation.accuracy`, the gate's `metrics.accuracy_floor`), read from the artifact's
metadata and its signature verified with the trusted keys (no download); a figure the lineage does not have, or a
lineage that does not verify, is left out.

Every write is signed with the trainer's key and conditioned on the generation read (create-only when there is none),
so two joiners never overwrite each other's counts: the one that loses re-reads the document and applies its counts
again. A document that does not verify is never built on: the next write starts it again.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import storage

from core import gcs, layout, liveaccuracy, signing
from core.errors import ArtifactRejected
from core.shipped import iso_time
from core.store import ArtifactRef, ModelStore

log = logging.getLogger(__name__)

SCHEMA = 1
MAX_POINTS = liveaccuracy.SERIES_MAX
KEEP_VERSIONS = 50
"""Newest versions the document keeps (with full series, ~12 KiB each: well within what readers take)."""
MAX_ATTEMPTS = 20
"""Writes tried before a pass gives up (each loss means another joiner's counts landed first)."""


def empty() -> dict[str, Any]:
    return {"schema": SCHEMA, "versions": {}}


def tally(joined: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """(correct, total) per model version of joined rows (rows without a version are not counted)."""
    correct, total = Counter[str](), Counter[str]()
    for row in joined:
        version = row.get("version")
        if isinstance(version, str):
            total[version] += 1
            correct[version] += int(row.get("predicted") == row.get("label"))
    return {v: (correct[v], total[v]) for v in total}


def thin(points: list[dict[str, Any]], limit: int = MAX_POINTS) -> list[dict[str, Any]]:
    """At most `limit` points, evenly spaced over the list, the first and the last kept."""
    if len(points) <= limit:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def offline(bucket: storage.Bucket, keyring: signing.Keyring, version: str, retry: Any) -> dict[str, float]:
    """The gate's figures of `version` from its signed lineage; {} when the artifact is missing or does not verify."""
    blob = gcs.call(retry, bucket.get_blob, layout.model_object(version))
    if blob is None:
        return {}
    try:
        lineage = ModelStore(bucket, keyring, retry).verify_metadata(ArtifactRef.from_blob(blob))
    except ArtifactRejected as e:
        log.warning("no offline figures for %s: %s", version, e.message, extra={"reason": e.reason})
        return {}
    figures = {
        "accuracy": lineage.metrics.get("accuracy"),
        "evaluation": lineage.evaluation.get("accuracy"),
        "accuracy_floor": lineage.metrics.get("accuracy_floor"),
    }
    return {k: float(v) for k, v in figures.items() if isinstance(v, int | float)}


def applied(document: dict[str, Any], counts: dict[str, tuple[int, int]], now: float,
            figures: dict[str, dict[str, float]]) -> dict[str, Any]:  # fmt: skip
    """`document` with `counts` added (a point appended to each changed version's series)."""
    versions = dict(document.get("versions") or {})
    for version, (correct, total) in sorted(counts.items()):
        entry = dict(versions.get(version) or {"correct": 0, "total": 0, "series": []})
        entry["correct"] = int(entry.get("correct", 0)) + correct
        entry["total"] = int(entry.get("total", 0)) + total
        point = {"time": iso_time(now), "correct": entry["correct"], "total": entry["total"]}
        entry["series"] = thin([*list(entry.get("series") or []), point])
        if version in figures:
            entry["offline"] = figures[version]
        entry.setdefault("offline", {})
        versions[version] = entry
    kept = sorted(versions, reverse=True)[:KEEP_VERSIONS]
    return {"schema": SCHEMA, "updated": iso_time(now), "versions": {v: versions[v] for v in sorted(kept)}}


def encoded(document: dict[str, Any]) -> bytes:
    """The document's JSON, its oldest versions left out until it fits what readers take (MAX_BYTES)."""
    while True:
        body = json.dumps(document, separators=(",", ":")).encode()
        if len(body) <= liveaccuracy.MAX_BYTES or not document["versions"]:
            return body
        versions = dict(document["versions"])
        del versions[min(versions)]
        document = {**document, "versions": versions}


def read(bucket: storage.Bucket, prefix: str, keyring: signing.Keyring, retry: Any) -> tuple[dict[str, Any], int]:
    """The document and its generation (an empty document and 0 when there is none). A document that is unsigned, not
    signed by a trusted key or invalid is not built on: the pass starts it again (and overwrites it)."""
    blob = gcs.call(retry, bucket.get_blob, liveaccuracy.object_name(prefix))
    if blob is None:
        return empty(), 0
    generation = int(blob.generation or 0)
    try:
        raw = gcs.call(retry, blob.download_as_bytes, if_generation_match=generation)
    except (gexc.NotFound, gexc.PreconditionFailed):
        return read(bucket, prefix, keyring, retry)
    try:
        liveaccuracy.verify(raw, blob.metadata, keyring, blob.name)
        document = liveaccuracy.as_json(liveaccuracy.parse(raw))
    except (ArtifactRejected, ValueError) as e:
        log.error("live accuracy document refused, starting it again: %s", e, extra={"object": blob.name})
        document = empty()
    return document, generation


def add(bucket: storage.Bucket, prefix: str, keyring: signing.Keyring, joined: list[dict[str, Any]], now: float,
        retry: Any) -> dict[str, Any] | None:  # fmt: skip
    """Add the joined rows' counts to the document, conditioned on the generation read, re-reading on a 412.

    Returns the document written (None when there was nothing to count)."""
    counts = tally(joined)
    if not counts:
        return None
    figures: dict[str, dict[str, float]] = {}
    for _ in range(MAX_ATTEMPTS):
        document, generation = read(bucket, prefix, keyring, retry)
        known = document["versions"]
        for version in counts:
            if version not in figures and not (known.get(version) or {}).get("offline"):
                figures[version] = offline(bucket, keyring, version, retry)
        updated = applied(document, counts, now, figures)
        try:
            liveaccuracy.write(bucket, prefix, encoded(updated), keyring, retry, if_generation_match=generation)
        except gexc.PreconditionFailed:
            log.info("live accuracy document changed meanwhile; reading it again")
            continue
        return updated
    raise gexc.PreconditionFailed(f"{liveaccuracy.object_name(prefix)} kept changing: {MAX_ATTEMPTS} writes lost")
