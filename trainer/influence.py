"""How much one data/ file may steer a model: fair shares of the run's bytes and rows, and suspicious files held back.

Every file is an upload someone made. A run reads at most MAX_RUN_BYTES and trains on at most MAX_TRAINING_ROWS,
both shared fairly (a file smaller than the even share keeps all of it, the rest is split evenly among the larger
ones), and no upload holds more than MAX_UPLOAD_SHARE of the rows it joins (its own and the older files'). A file is
excluded when the serving model confidently contradicts too many of its labels, or when its species mix departs
sharply from the older files it joins; an excluded file keeps its bytes in data/, is named in the run's summary and
gets a report object `reports/<object>.excluded.json` (see exclusion_report), and is checked again on every run."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from google.cloud import storage

from core import gcs, layout
from core.errors import ServiceError
from core.iris import CLASSES
from trainer.settings import TrainerSettings

log = logging.getLogger(__name__)


@dataclass
class FileRows:
    """The valid rows read from one data/ file, with its place in upload order."""

    name: str
    features: np.ndarray
    codes: np.ndarray
    """Species as indexes into CLASSES."""
    order: int
    """Upload order (the object's generation): a file is compared with the older ones."""
    blob: storage.Blob | None = None

    @property
    def rows(self) -> int:
        return len(self.codes)

    def mix(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(CLASSES)).astype(np.float64)


@dataclass
class Exclusion:
    """Why one file is held back, with the figures a person needs to judge it."""

    reasons: list[str]
    figures: dict[str, Any]


@dataclass
class Selection:
    """Which rows of each file a run trains on."""

    used: dict[str, np.ndarray] = field(default_factory=dict)
    """Row indexes per file that trains (all of them unless the file was thinned)."""
    excluded: dict[str, Exclusion] = field(default_factory=dict)
    rows_per_file: int = 0
    """The fair share of MAX_TRAINING_ROWS (the largest file's rows when the cap was not reached)."""

    def summary(self, files: Sequence[FileRows]) -> dict[str, Any]:
        """The run summary's fields: excluded files with their reasons and report, thinned files."""
        rows = {f.name: f.rows for f in files}
        thinned = {n: {"rows_read": rows[n], "rows_used": len(i)} for n, i in self.used.items() if len(i) < rows[n]}
        return {
            "excluded_files": len(self.excluded),
            "excluded_rows": sum(rows[n] for n in self.excluded),
            "excluded": {n: {"reasons": e.reasons, "report": exclusion_report(n)} for n, e in self.excluded.items()},
            "rows_per_file_cap": self.rows_per_file,
            "thinned": thinned,
        }


def exclusion_report(name: str) -> str:
    """Object name of the report on an excluded data/ file."""
    return f"{layout.REPORTS}{name}.excluded.json"


def fair_cap(sizes: Sequence[int], total: int) -> int:
    """The largest c with sum(min(size, c)) <= total: small files keep all, large ones get equal shares."""
    remaining, ordered = total, sorted(sizes)
    for k, size in enumerate(ordered):
        if size * (len(ordered) - k) > remaining:
            return remaining // (len(ordered) - k)
        remaining -= size
    return ordered[-1] if ordered else 0


def share_caps(counts: Sequence[int], share: float) -> list[int]:
    """Rows each file may keep, in upload order: at most `share` of its own rows plus those kept of the older files.

    The first file keeps all; an upload of any size then holds at most `share` of the data it joins.
    """
    caps, older = [], 0
    for count in counts:
        cap = count if share >= 1 or older == 0 else min(count, int(older * share / (1 - share)))
        caps.append(cap)
        older += cap
    return caps


def thin(rows: int, cap: int) -> np.ndarray:
    """`cap` row indexes spread evenly over `rows` (all of them when rows <= cap)."""
    if rows <= cap:
        return np.arange(rows)
    return np.linspace(0, rows - 1, num=cap).astype(np.int64)


def contradicted(model: Any, rows: FileRows, confidence: float) -> int:
    """How many of the file's rows the model gives another species with at least `confidence`."""
    if rows.rows == 0:
        return 0
    probabilities = model.predict_proba(rows.features)
    classes = np.asarray(model.classes_)
    best = probabilities.argmax(axis=1)
    labels = np.asarray(CLASSES)[rows.codes]
    sure = probabilities[np.arange(len(best)), best] >= confidence
    return int(np.count_nonzero(sure & (classes[best] != labels)))


def mix_distance(mix: np.ndarray, reference: np.ndarray) -> float:
    """Total variation distance between two species counts (0: the same shares, 1: no species in common)."""
    return float(0.5 * np.abs(mix / mix.sum() - reference / reference.sum()).sum())


def _named(counts: np.ndarray) -> dict[str, int]:
    return dict(zip(CLASSES, counts.astype(int).tolist(), strict=True))


def judge(rows: FileRows, model: Any | None, reference: np.ndarray, settings: TrainerSettings) -> Exclusion | None:
    """An Exclusion when the serving model contradicts the file, or its species mix departs from `reference`."""
    reasons: list[str] = []
    figures: dict[str, Any] = {"rows": rows.rows, "species": _named(rows.mix())}
    if model is not None and rows.rows:
        count = contradicted(model, rows, settings.contradiction_confidence)
        share = count / rows.rows
        figures |= {"contradicted_rows": count, "contradicted_share": round(share, 4)}
        if share > settings.max_contradicted_share and count >= settings.min_contradicted_rows:
            reasons.append(
                f"the serving model gives another species with probability >= {settings.contradiction_confidence} "
                f"for {count} of {rows.rows} rows ({share:.1%} > {settings.max_contradicted_share:.1%})"
            )
    if reference.sum() > 0 and rows.rows:
        distance, weight = mix_distance(rows.mix(), reference), rows.rows / (rows.rows + reference.sum())
        figures |= {"mix_distance": round(distance, 4), "weight": round(weight, 4), "older_species": _named(reference)}
        if distance > settings.max_label_mix_distance and weight >= settings.min_label_mix_weight:
            reasons.append(
                f"its species mix is {distance:.2f} (total variation) from the older files' "
                f"(> {settings.max_label_mix_distance}), and it would hold {weight:.0%} of their rows"
            )
    return Exclusion(reasons, figures) if reasons else None


def select(files: Sequence[FileRows], model: Any | None, settings: TrainerSettings) -> Selection:
    """Judge every file against the serving model and the older files, then cap what the others contribute.

    Files are judged in upload order, each against the species mix of the older files that were kept. Each kept file
    is then held to MAX_UPLOAD_SHARE of the data it joins, and to the fair share of MAX_TRAINING_ROWS; a file above
    its cap is thinned evenly.
    """
    selection, reference = Selection(), np.zeros(len(CLASSES))
    for rows in sorted(files, key=lambda f: (f.order, f.name)):
        exclusion = judge(rows, model, reference, settings)
        if exclusion:
            selection.excluded[rows.name] = exclusion
        else:
            reference += rows.mix()
    kept = sorted((f for f in files if f.name not in selection.excluded and f.rows), key=lambda f: (f.order, f.name))
    shares = share_caps([f.rows for f in kept], settings.max_upload_share)
    cap = fair_cap(shares, settings.max_training_rows)
    selection.rows_per_file = cap
    selection.used = {f.name: thin(f.rows, min(share, cap)) for f, share in zip(kept, shares, strict=True)}
    return selection


def report(
    rows: FileRows, exclusion: Exclusion, judge_version: str | None, settings: TrainerSettings
) -> dict[str, Any]:
    """The report a person reads: what was held back, why, by which model, and what to do."""
    generation = rows.blob.generation if rows.blob is not None else None
    return {
        "object": rows.name,
        "generation": generation,
        "status": "excluded from training",
        "reasons": exclusion.reasons,
        **exclusion.figures,
        "serving_model": judge_version,
        "thresholds": {
            "contradiction_confidence": settings.contradiction_confidence,
            "max_contradicted_share": settings.max_contradicted_share,
            "min_contradicted_rows": settings.min_contradicted_rows,
            "max_label_mix_distance": settings.max_label_mix_distance,
            "min_label_mix_weight": settings.min_label_mix_weight,
        },
        "checked_at": datetime.now(UTC).isoformat(),
        "what_now": "The file stays in data/ and is checked again on every run. If its labels are right, retrain "
        "once with the threshold above raised (python -m trainer --force) so the serving model learns them; else "
        "delete it, or correct the labels and upload it again.",
    }


def announce(
    bucket: storage.Bucket,
    files: Sequence[FileRows],
    selection: Selection,
    judge_version: str | None,
    settings: TrainerSettings,
    retry: Any,
) -> None:
    """Log every excluded file as a warning and write its report object (a failed write is logged, never fatal)."""
    by_name = {f.name: f for f in files}
    for name, exclusion in selection.excluded.items():
        body = report(by_name[name], exclusion, judge_version, settings)
        log.warning("excluded %s from training: %s", name, "; ".join(exclusion.reasons), extra={"excluded": body})
        blob = bucket.blob(exclusion_report(name))
        try:
            text = json.dumps(body, indent=2) + "\n"
            gcs.call(retry, blob.upload_from_string, text, "application/json")
        except ServiceError as e:  # the run still trains without the file; the summary names it
            log.error("could not write %s: %s", blob.name, e)
