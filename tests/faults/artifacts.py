"""Hostile and broken model artifacts, uploaded straight to models/ as an attacker or a buggy job would."""

from __future__ import annotations

import builtins
import pickle
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from google.cloud import storage
from sklearn.datasets import load_iris
from sklearn.pipeline import Pipeline

from core import layout, signing
from core.iris import CLASSES, FEATURES
from core.lineage import Lineage
from core.signing import Keyring
from tests.keys import OTHER
from trainer.model import build


class OpensMarker:
    """Unpickling this calls open(marker, "w"): code execution from a model file if it were ever loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return builtins.open, (str(self.marker), "w")


@dataclass(frozen=True)
class BadArtifact:
    """One upload and the rejection reason it must earn."""

    label: str
    version: str
    data: bytes
    metadata: dict[str, str] | None
    reason: str

    @property
    def name(self) -> str:
        return layout.model_object(self.version)


def future_version(offset_ms: int) -> str:
    """A version a little in the future, so it sorts after everything already published."""
    return layout.format_version(datetime.now(UTC) + timedelta(seconds=1, milliseconds=offset_ms))


def signed_metadata(key: Keyring, version: str, data: bytes, **fields: Any) -> dict[str, str]:
    """Lineage metadata for `version` and the SHA-256 of `data`, signed with `key` (then `fields` laid over it)."""
    digest = signing.sha256_hex(data)
    lineage = Lineage(
        version=version, created_at=datetime.now(UTC).isoformat(), sha256=digest,
        signature="", sklearn_version="1", python_version="3",
        model_type="test", data_fingerprint="faults", row_count=150, metrics={},
        feature_names=list(FEATURES), classes=list(CLASSES),
    )  # fmt: skip
    return {**lineage.signed_with(key).to_metadata(), **fields}


def fitted(features: int = len(FEATURES), classes: int = len(CLASSES)) -> Pipeline:
    """The production pipeline fitted on a slice of iris: fewer features or fewer classes."""
    iris = load_iris()
    keep = iris.target < classes
    return build().fit(iris.data[keep][:, :features], np.asarray(CLASSES)[iris.target[keep]])


def catalogue(key: Keyring, good: bytes, replayed: tuple[bytes, dict[str, str]], marker: Path) -> list[BadArtifact]:
    """Every kind of bad artifact of the issue, each with the reason the predictor must give."""
    versions = iter(future_version(i) for i in range(100))
    dump = pickle.dumps
    corrupt = bytes(b ^ 0xFF if i % 97 == 0 else b for i, b in enumerate(good))
    truncated = good[: len(good) // 2]
    evil = dump(OpensMarker(marker))
    ours = key.signer.key_id if key.signer else ""
    items = [
        ("corrupt bytes", corrupt, lambda v: signed_metadata(key, v, good), "hash_mismatch"),
        ("truncated", truncated, lambda v: signed_metadata(key, v, truncated), "unpickle_failed"),
        ("bad signature", good, lambda v: signed_metadata(key, v, good, signature="00" * 64), "bad_signature"),
        ("unsigned", good, lambda v: None, "unsigned"),
        ("other key", good, lambda v: signed_metadata(OTHER, v, good), "unknown_key"),
        ("other key, our key id", good, lambda v: signed_metadata(OTHER, v, good, key_id=ours), "bad_signature"),
        ("replayed older", replayed[0], lambda v: dict(replayed[1]), "version_mismatch"),
        ("wrong features", dump(fitted(features=3)), None, "schema_mismatch"),
        ("wrong classes", dump(fitted(classes=2)), None, "schema_mismatch"),
        ("code exec, other key", evil, lambda v: signed_metadata(OTHER, v, evil, key_id=ours), "bad_signature"),
        ("code exec, right key", evil, None, "unpickle_failed"),
    ]
    out = []
    for label, data, meta, reason in items:
        version = next(versions)
        metadata = meta(version) if meta else signed_metadata(key, version, data)
        out.append(BadArtifact(label, version, data, metadata, reason))
    return out


def upload(bucket: storage.Bucket, artifact: BadArtifact) -> int:
    """Upload as models/model-<version>.pkl with its metadata; returns the generation."""
    blob = bucket.blob(artifact.name)
    blob.metadata = artifact.metadata
    blob.upload_from_string(artifact.data, content_type="application/octet-stream", if_generation_match=0)
    return int(blob.generation or 0)
