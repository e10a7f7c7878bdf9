"""The trusted evaluation set: flowers no upload can touch, signed like a model, that every candidate is scored on.

Each version is one canonical CSV, `eval/evalset-<version>.csv`, created once and never overwritten. Its custom
metadata (version, created_at, sha256, rows, key_id, signature) is signed with the same keys as models but under its
own purpose label, so a model's signature never verifies as a set's, nor a set's as a model's. Only the operator
writes eval/ (`python -m trainer.evalset seed | publish FILE.csv`, with the signing key); the trainer can only read
it and the ingest function cannot reach it (deploy/setup-gcp.sh). The trainer scores every candidate and the serving
model on the newest set that verifies, and fails the run when there is none: it never writes a set itself.

usage: python -m trainer.evalset seed | publish [FILE.csv] [--replace] | show
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from google.api_core import exceptions as gexc
from google.cloud import storage

from core import csvscan, gcs, iris, layout, signing
from core.errors import ArtifactRejected, ServiceError
from core.gcs import REQUEST_TIMEOUT
from core.states import GateReason, RejectReason
from core.store import MAX_CLOCK_SKEW
from trainer.settings import TrainerSettings

log = logging.getLogger(__name__)

PURPOSE = "iris-evaluation-set/v1"
"""Bound into every set's signature (a model's is bound to core.signing.PURPOSE)."""
SIGNED_FIELDS = ("version", "created_at", "sha256", "rows", "key_id")
_HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}|[0-9a-f]{128}")
"""An HMAC-SHA256 or Ed25519 signature as lower-case hex, nothing else."""
MAX_SET_BYTES = 16 * 1024 * 1024
"""Largest evaluation set read or published (the bundled iris set is 4 KiB)."""


class EvalSetUnavailable(ServiceError):
    """No evaluation set under eval/ verifies: the trainer cannot gate, so the run fails."""

    status = 503
    code = "evalset_unavailable"


@dataclass(frozen=True)
class TrustedSet:
    """A verified evaluation set."""

    version: str
    key_id: str
    features: np.ndarray
    labels: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.labels)

    def as_rows(self) -> list[csvscan.Row]:
        return [
            csvscan.Row(i + 2, [], tuple(float(v) for v in x), str(label))
            for i, (x, label) in enumerate(zip(self.features, self.labels, strict=True))
        ]


def message(fields: Mapping[str, str]) -> bytes:
    """The signed bytes of a set: purpose and fields as sorted, compact, ASCII-only JSON."""
    document = {"purpose": PURPOSE, "fields": dict(fields)}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def verify_metadata(name: str, metadata: Mapping[str, str] | None, keyring: signing.Keyring) -> dict[str, str]:
    """The signed fields of the set named `name`, once its name and signature check out; ArtifactRejected otherwise."""
    version = layout.eval_version(name)
    if version is None:
        raise ArtifactRejected(RejectReason.BAD_NAME, "not an eval/evalset-<version>.csv object", name)
    metadata = metadata or {}
    signature = metadata.get("signature", "")
    if not signature:
        raise ArtifactRejected(RejectReason.UNSIGNED, "evaluation set has no signature in its metadata", name)
    try:
        fields = {k: metadata[k] for k in SIGNED_FIELDS}
    except KeyError as e:
        raise ArtifactRejected(RejectReason.BAD_METADATA, f"metadata lacks {e}", name) from e
    if fields["version"] != version:
        raise ArtifactRejected(RejectReason.VERSION_MISMATCH, f"signed for {fields['version']}", name)
    key = keyring.trusted.get(fields["key_id"])
    if key is None:
        raise ArtifactRejected(RejectReason.UNKNOWN_KEY, f"signed by {fields['key_id']!r}, not a trusted key", name)
    if not _HEX_SIGNATURE.fullmatch(signature) or not key.verify(message(fields), signature):
        raise ArtifactRejected(RejectReason.BAD_SIGNATURE, "signature does not cover this set's metadata", name)
    if layout.version_time(version) > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise ArtifactRejected(RejectReason.FUTURE_VERSION, f"version is more than {MAX_CLOCK_SKEW} ahead", name)
    return fields


def parse(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of a set's CSV: every row valid, every class present; ArtifactRejected otherwise."""
    rows, report = csvscan.validate_bytes(data, csvscan.Limits(max_bytes=MAX_SET_BYTES, max_rows=MAX_SET_BYTES // 16))
    problem = report.fatal or (f"{report.rows_invalid} invalid rows" if report.rows_invalid else None)
    labels = np.asarray([row.label for row in rows], dtype=object)
    missing = [c for c in iris.CLASSES if not np.any(labels == c)]
    if problem is None and missing:
        problem = f"no flowers of {', '.join(missing)}"
    if problem:
        raise ArtifactRejected(RejectReason.SCHEMA_MISMATCH, f"not a usable evaluation set: {problem}", name)
    features = np.asarray([row.values for row in rows], dtype=np.float64).reshape(-1, len(iris.FEATURES))
    return features, labels.astype(str)


def load_trusted(bucket: storage.Bucket, keyring: signing.Keyring, retry: Any) -> TrustedSet:
    """The newest evaluation set whose signature, hash and content verify; EvalSetUnavailable when none does."""
    blobs: list[storage.Blob] = gcs.call(retry, gcs.listed, bucket, prefix=layout.EVAL)
    refused = []
    for blob in sorted(blobs, key=lambda b: layout.eval_version(b.name) or "", reverse=True):
        try:
            return _load(blob, keyring, retry)
        except ArtifactRejected as e:
            log.warning("refused evaluation set %s: %s", blob.name, e.message, extra={"reason": e.reason})
            refused.append(e.message if blob.name in e.message else f"{blob.name}: {e.message}")
    found = "; ".join(refused[:3]) + (f" and {len(refused) - 3} more" if len(refused) > 3 else "") or "none found"
    raise EvalSetUnavailable(
        f"no trusted evaluation set under {layout.EVAL} ({found}): the operator publishes one with "
        "`python -m trainer.evalset seed` (see README, Trusted evaluation set)",
        {"refused": refused[:10]},
    )


def _load(blob: storage.Blob, keyring: signing.Keyring, retry: Any) -> TrustedSet:
    fields = verify_metadata(blob.name, blob.metadata, keyring)
    if (blob.size or 0) > MAX_SET_BYTES:
        raise ArtifactRejected(RejectReason.SCHEMA_MISMATCH, f"larger than {MAX_SET_BYTES} bytes", blob.name)
    pinned = bucket_blob(blob)
    try:
        data: bytes = gcs.call(retry, pinned.download_as_bytes)
    except gexc.NotFound as e:
        raise ArtifactRejected(RejectReason.NOT_FOUND, "the set is gone", blob.name) from e
    if signing.sha256_hex(data) != fields["sha256"]:
        raise ArtifactRejected(RejectReason.HASH_MISMATCH, "content does not match its signed SHA-256", blob.name)
    features, labels = parse(data, blob.name)
    if str(len(labels)) != fields["rows"]:
        raise ArtifactRejected(RejectReason.BAD_METADATA, f"signed for {fields['rows']} rows", blob.name)
    return TrustedSet(fields["version"], fields["key_id"], features, labels)


def bucket_blob(blob: storage.Blob) -> storage.Blob:
    """The exact generation that was listed (a later overwrite is never read in its place)."""
    return blob.bucket.blob(blob.name, generation=blob.generation)


def publish(bucket: storage.Bucket, keyring: signing.Keyring, retry: Any, rows: Sequence[csvscan.Row]) -> str:
    """Sign and upload `rows` as a new set (create-only); returns its version. The operator's step, never the
    trainer's."""
    if keyring.signer is None:
        raise ValueError("publishing an evaluation set needs the signing key")
    data = csvscan.to_csv(rows)
    parse(data, "new evaluation set")
    now = datetime.now(UTC)
    version = layout.format_version(now)
    fields = {
        "version": version,
        "created_at": now.isoformat(),
        "sha256": signing.sha256_hex(data),
        "rows": str(len(rows)),
        "key_id": keyring.signer.key_id,
    }
    blob = bucket.blob(layout.eval_object(version))
    blob.metadata = fields | {"signature": keyring.signer.sign(message(fields))}
    gcs.call(retry, blob.upload_from_string, data, "text/csv", if_generation_match=0, timeout=REQUEST_TIMEOUT)
    return version


def iris_rows() -> list[csvscan.Row]:
    """The 150 flowers of scikit-learn's bundled iris data, the seed of the first set."""
    from sklearn.datasets import load_iris

    bundled = load_iris()
    return [
        csvscan.Row(i + 2, [], tuple(float(v) for v in x), iris.CLASSES[t])
        for i, (x, t) in enumerate(zip(bundled.data, bundled.target, strict=True))
    ]


@dataclass(frozen=True)
class Figures:
    """A model's accuracy and per-class recall on a trusted set."""

    accuracy: float
    recall: dict[str, float]

    def record(self, trusted: TrustedSet) -> dict[str, Any]:
        """Compact form for the lineage (custom metadata is small): set version, accuracy, recall by class."""
        recall = {c: round(r, 4) for c, r in self.recall.items()}
        return {"set": trusted.version, "rows": trusted.rows, "accuracy": round(self.accuracy, 4), "recall": recall}


def score(model: Any, trusted: TrustedSet) -> Figures:
    """Accuracy and the recall of each class of `model` on the trusted set."""
    predicted = np.asarray(model.predict(trusted.features)).astype(str)
    right = predicted == trusted.labels
    recall = {c: float(np.mean(right[trusted.labels == c])) for c in iris.CLASSES}
    return Figures(float(np.mean(right)), recall)


@dataclass(frozen=True)
class Verdict:
    """The trusted set's say on a candidate: its figures, the serving model's, and why it is refused (or None)."""

    evaluation: dict[str, Any]
    baseline: dict[str, Any] | None
    reason: GateReason | None = None
    message: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"evaluation": self.evaluation} | ({"evaluation_baseline": self.baseline} if self.baseline else {})


def gate(candidate: Any, current: Any | None, trusted: TrustedSet, settings: TrainerSettings) -> Verdict:
    """Refuse a candidate below ACCURACY_FLOOR on the trusted set, or regressing from the serving model there: in any
    class's recall by more than EVAL_RECALL_TOLERANCE, or in accuracy by more than EVAL_ACCURACY_TOLERANCE."""
    mine = score(candidate, trusted)
    theirs = score(current, trusted) if current is not None else None
    verdict = Verdict(mine.record(trusted), theirs.record(trusted) if theirs else None)
    on = f"on trusted set {trusted.version}"
    if mine.accuracy < settings.accuracy_floor:
        text = f"accuracy {mine.accuracy:.4f} {on} below floor {settings.accuracy_floor}"
        return _refuse(verdict, GateReason.EVAL_ACCURACY_FLOOR, text)
    if theirs is None:
        return verdict
    worst = min(iris.CLASSES, key=lambda c: mine.recall[c] - theirs.recall[c])
    if mine.recall[worst] < theirs.recall[worst] - settings.eval_recall_tolerance:
        text = (
            f"{worst} recall {mine.recall[worst]:.4f} {on} regresses from the serving model's"
            f" {theirs.recall[worst]:.4f} beyond {settings.eval_recall_tolerance}"
        )
        return _refuse(verdict, GateReason.EVAL_RECALL_REGRESSION, text)
    if mine.accuracy < theirs.accuracy - settings.eval_accuracy_tolerance:
        text = (
            f"accuracy {mine.accuracy:.4f} {on} regresses from the serving model's {theirs.accuracy:.4f}"
            f" beyond {settings.eval_accuracy_tolerance}"
        )
        return _refuse(verdict, GateReason.EVAL_ACCURACY_REGRESSION, text)
    return verdict


def _refuse(verdict: Verdict, reason: GateReason, text: str) -> Verdict:
    return Verdict(verdict.evaluation, verdict.baseline, reason, f"{reason}: {text}")


def _read_file(path: Path) -> list[csvscan.Row]:
    """Every row of an operator's CSV, or SystemExit(2) naming the first problems (a set has no invalid rows)."""
    if path.stat().st_size > MAX_SET_BYTES:
        raise SystemExit(f"{path}: larger than {MAX_SET_BYTES} bytes")
    rows, report = csvscan.validate_bytes(path.read_bytes(), csvscan.Limits(max_bytes=MAX_SET_BYTES))
    if report.fatal or report.rows_invalid:
        errors = [e.as_dict() for e in report.errors[:5]]
        print(f"{path}: {report.fatal or f'{report.rows_invalid} invalid rows'} {errors}", file=sys.stderr)
        raise SystemExit(2)
    return rows


def main(argv: list[str] | None = None) -> int:
    from core import logs, settings

    parser = argparse.ArgumentParser(prog="python -m trainer.evalset", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("seed", help="publish scikit-learn's bundled iris as the first set, unless one verifies")
    publish_cmd = commands.add_parser(
        "publish", help="publish the newest set plus FILE.csv's rows as a new version (no FILE: signed again)"
    )
    publish_cmd.add_argument("file", type=Path, nargs="?", help="CSV with the training data's columns, all valid")
    publish_cmd.add_argument("--replace", action="store_true", help="FILE.csv's rows only, not added to the newest")
    commands.add_parser("show", help="the newest set that verifies: version, rows, signing key, rows per class")
    args = parser.parse_args(argv)
    config = settings.load(settings.SignerSettings)  # the bucket and the signing key: no training settings
    logs.setup(config.log_level)
    bucket = gcs.client(config).bucket(config.gcs_bucket)
    keyring, retry = config.keyring(), gcs.retry(config)
    try:
        current: TrustedSet | None = load_trusted(bucket, keyring, retry)
    except EvalSetUnavailable as e:
        if args.command == "show":
            print(e.message, file=sys.stderr)
            return 1
        current = None
    if args.command == "show" or (args.command == "seed" and current is not None):
        assert current is not None
        counts = {c: int(np.sum(current.labels == c)) for c in iris.CLASSES}
        status = "exists" if args.command == "seed" else "trusted"
        print(json.dumps({"status": status, "version": current.version, "rows": current.rows,
                          "key_id": current.key_id, "classes": counts}))  # fmt: skip
        return 0
    if args.command == "seed":
        rows = iris_rows()
    else:
        rows = _read_file(args.file) if args.file else []
        if current is not None and not args.replace:
            rows = current.as_rows() + rows
        if not rows:
            print("nothing to publish: no trusted set to sign again, and no FILE.csv", file=sys.stderr)
            return 2
    try:
        version = publish(bucket, keyring, retry, rows)
    except ArtifactRejected as e:
        print(e.message, file=sys.stderr)
        return 2
    print(json.dumps({"status": "published", "version": version, "rows": len(rows),
                      "object": layout.eval_object(version)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
