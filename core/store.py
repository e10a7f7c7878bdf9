"""The model store: signed, timestamped, never-overwritten artifacts under models/ in the bucket.

Reads verify the signature and the content hash before anything is unpickled.
"""

from __future__ import annotations

import logging
import math
import pickle
import platform
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as package_version
from typing import Any

import numpy as np
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import storage

from core import gcs, layout, signing, unpickle
from core.errors import ArtifactRejected, StoreRefused
from core.gcs import REQUEST_TIMEOUT
from core.iris import CLASSES, EXAMPLES, FEATURES
from core.lineage import DIRECT, Lineage, Provenance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArtifactRef:
    """One artifact object: its name, generation and (unverified) metadata."""

    name: str
    generation: int
    version: str
    metadata: dict[str, str]
    created: datetime | None = None
    size: int | None = None
    """Bytes of the object, as listed (unverified: the download is capped whatever it says)."""

    @classmethod
    def from_blob(cls, blob: storage.Blob) -> ArtifactRef:
        version = layout.model_version(blob.name) or ""
        return cls(
            blob.name, int(blob.generation or 0), version, dict(blob.metadata or {}), blob.time_created, blob.size
        )


@dataclass(frozen=True)
class LoadedModel:
    """A verified, unpickled, warmed-up model and where it came from."""

    ref: ArtifactRef
    lineage: Lineage
    model: Any

    @property
    def version(self) -> str:
        return self.lineage.version


OnReject = Callable[[ArtifactRef, ArtifactRejected], None]


def check_model(model: Any, name: str) -> None:
    """Schema and warm-up checks: four features, the three classes, sane predictions on known flowers."""
    classes = [str(c) for c in getattr(model, "classes_", [])]
    if classes != list(CLASSES) or getattr(model, "n_features_in_", None) != len(FEATURES):
        raise ArtifactRejected("schema_mismatch", f"classes {classes} / features do not match the schema", name)
    try:
        proba = model.predict_proba(np.array(list(EXAMPLES.values()), dtype=np.float64))
    except Exception as e:
        raise ArtifactRejected("warmup_failed", f"predict_proba failed: {e}", name) from e
    predicted = [CLASSES[i] for i in np.argmax(proba, axis=1)]
    if predicted != list(EXAMPLES) or not all(math.isclose(s, 1.0, abs_tol=1e-6) for s in proba.sum(axis=1)):
        raise ArtifactRejected("warmup_failed", f"known flowers predicted as {predicted}", name)


def restore(data: bytes, name: str, limits: unpickle.Limits | None = None) -> Any:
    """Unpickle with the exact allowlist and the size caps, then run check_model; ArtifactRejected otherwise."""
    try:
        model = unpickle.loads(data, limits)
    except Exception as e:
        raise ArtifactRejected("unpickle_failed", f"{type(e).__name__}: {e}", name) from e
    check_model(model, name)
    return model


MAX_SPLIT_LISTINGS = 1000
"""Most listings spent around objects that break a listing (one bad object costs about 220)."""
MAX_CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of this clock a version may be: a far-future artifact would otherwise outrank every retrain."""


class ModelStore:
    """Publishes and loads artifacts in one bucket: signs with the keyring's key, verifies against its trusted ones."""

    def __init__(
        self, bucket: storage.Bucket, keyring: signing.Keyring, retry: Retry, limits: unpickle.Limits | None = None
    ) -> None:
        self.bucket, self.keyring, self.retry = bucket, keyring, retry
        self.limits = limits or unpickle.Limits()

    def publish(
        self,
        model: Any,
        *,
        data_fingerprint: str,
        row_count: int,
        metrics: dict[str, float],
        provenance: Provenance = DIRECT,
        evaluation: dict[str, Any] | None = None,
        reference: dict[str, Any] | None = None,
        feedback_rows: int | None = None,
    ) -> Lineage:
        """Pickle `model`, load it back the way a predictor will, then sign and upload it (publish_bytes).

        A model that needs a global outside the unpickle allowlist, or fails check_model, raises ArtifactRejected
        here and is never published.
        """
        data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        model_type = model_type_of(model)
        restore(data, f"new {model_type} artifact", self.limits)
        return self.publish_bytes(
            data,
            model_type=model_type,
            data_fingerprint=data_fingerprint,
            row_count=row_count,
            metrics=metrics,
            provenance=provenance,
            evaluation=evaluation,
            reference=reference,
            feedback_rows=feedback_rows,
        )

    def publish_bytes(
        self,
        data: bytes,
        *,
        model_type: str,
        data_fingerprint: str,
        row_count: int,
        metrics: dict[str, float],
        provenance: Provenance = DIRECT,
        evaluation: dict[str, Any] | None = None,
        reference: dict[str, Any] | None = None,
        feedback_rows: int | None = None,
    ) -> Lineage:
        """Sign and upload pickled bytes as a new artifact; never overwrites (if_generation_match=0)."""
        now = datetime.now(UTC)
        version, digest = layout.format_version(now), signing.sha256_hex(data)
        lineage = Lineage(
            version=version,
            created_at=now.isoformat(),
            sha256=digest,
            signature="",
            sklearn_version=package_version("scikit-learn"),
            python_version=platform.python_version(),
            model_type=model_type,
            data_fingerprint=data_fingerprint,
            row_count=row_count,
            metrics=metrics,
            feature_names=list(FEATURES),
            classes=list(CLASSES),
            trigger=provenance.trigger.value,
            data_objects=provenance.listed(),
            data_objects_total=len(provenance.objects),
            data_to_publish_s=provenance.delay_to(now),
            evaluation=evaluation or {},
            reference=reference or {},
            feedback_rows=feedback_rows,
        ).signed_with(self.keyring)
        blob = self.bucket.blob(layout.model_object(version))
        blob.metadata = lineage.to_metadata()  # sent with the content: no reader sees the object without it
        try:
            self._call(
                blob.upload_from_string,
                data,
                content_type="application/octet-stream",
                if_generation_match=0,
                timeout=REQUEST_TIMEOUT,
            )
        except gexc.PreconditionFailed:
            raise  # the name was taken: that object is someone else's
        except Exception:
            self._discard(blob.name)
            raise
        return lineage

    def _discard(self, name: str) -> None:
        """Delete what a failed upload may have left under its new, unique name (a server that stored the content
        and then failed); best effort: the upload's own error is what the caller sees."""
        try:
            self._call(self.bucket.blob(name).delete, timeout=REQUEST_TIMEOUT)
            log.warning("deleted %s left by a failed upload", name)
        except Exception as e:  # NotFound: nothing was stored
            log.debug("nothing to delete after the failed upload of %s: %s", name, e)

    def list_versions(self) -> list[ArtifactRef]:
        """Every artifact object under models/, oldest first (by version)."""
        blobs = self._model_blobs()
        refs = [ArtifactRef.from_blob(b) for b in blobs if layout.model_version(b.name)]
        return sorted(refs, key=lambda r: r.version)

    def retire_older(self, version: str, keep: Collection[str] = ()) -> list[str]:
        """Stamp `customTime` on artifacts older than `version` that lack one, except `keep`; returns their names.

        The bucket's lifecycle rule deletes by days since customTime, so the serving (newest) artifact is never
        deleted however long the data stays unchanged; superseded ones age out. Call it only with a version that
        verified (verify_published), and keep the pinned version: a stamp cannot be taken back.
        """
        blobs = self._model_blobs()
        retired = []
        for blob in blobs:
            old = layout.model_version(blob.name)
            if old and old < version and old not in keep and blob.custom_time is None:
                blob.custom_time = datetime.now(UTC)
                self._call(blob.patch, timeout=REQUEST_TIMEOUT)
                retired.append(blob.name)
        return retired

    def marked(self, version: str) -> bool:
        """Whether the artifact of `version` carries a customTime (the lifecycle rule will delete it)."""
        blob = self._call(self.bucket.get_blob, layout.model_object(version), timeout=REQUEST_TIMEOUT)
        return blob is not None and blob.custom_time is not None

    def verify_published(self, lineage: Lineage) -> LoadedModel:
        """Read an artifact just published back as a predictor does: fresh metadata, download, hash, signature
        against the trusted keys, allowlist unpickle and checks; the stored lineage must be the one published."""
        name = layout.model_object(lineage.version)
        loaded = self.load(self.ref(name))
        if loaded.lineage != lineage:
            raise ArtifactRejected("bad_metadata", "the stored lineage differs from the one published", name)
        return loaded

    def ref(self, name: str, generation: int | None = None) -> ArtifactRef:
        """Fresh metadata of one artifact object (a specific generation if given)."""
        blob = self._call(self.bucket.get_blob, name, generation=generation, timeout=REQUEST_TIMEOUT)
        if blob is None:
            raise ArtifactRejected("not_found", f"no object {name} (generation {generation})", name)
        return ArtifactRef.from_blob(blob)

    def load(self, ref: ArtifactRef) -> LoadedModel:
        """Verify name, signature and hash, then unpickle and check the model; ArtifactRejected otherwise."""
        return self.load_bytes(ref, self.download(ref))

    def download(self, ref: ArtifactRef) -> bytes:
        """The artifact's content, downloaded only once its name and signature verify (the hash is load_bytes')."""
        self.verify_metadata(ref)
        self.check_size(ref, ref.size or 0)
        blob = self.bucket.blob(ref.name, generation=ref.generation)
        try:  # one byte past the cap at most, whatever the listing said
            data: bytes = self._call(blob.download_as_bytes, end=self.limits.max_bytes, timeout=REQUEST_TIMEOUT)
        except gexc.NotFound as e:
            raise ArtifactRejected("not_found", f"{ref.name} generation {ref.generation} is gone", ref.name) from e
        self.check_size(ref, len(data))
        return data

    def check_size(self, ref: ArtifactRef, size: int) -> None:
        """`too_large` for an artifact over MODEL_MAX_BYTES."""
        if size > self.limits.max_bytes:
            message = f"{size} bytes or more, over MODEL_MAX_BYTES={self.limits.max_bytes}"
            raise ArtifactRejected("too_large", message, ref.name)

    def load_bytes(self, ref: ArtifactRef, data: bytes) -> LoadedModel:
        """Verify `data` as the content of `ref` (name, signature, hash), then unpickle and check the model."""
        lineage = self.verify_metadata(ref)
        self.check_size(ref, len(data))
        if signing.sha256_hex(data) != lineage.sha256:
            raise ArtifactRejected("hash_mismatch", "content does not match its signed SHA-256", ref.name)
        return LoadedModel(ref, lineage, restore(data, ref.name, self.limits))

    def verify_metadata(self, ref: ArtifactRef) -> Lineage:
        """Name and signature checks that need no download."""
        if not ref.version:
            raise ArtifactRejected("bad_name", "not a models/model-<version>.pkl object", ref.name)
        lineage = Lineage.from_metadata(ref.metadata, ref.name)
        if lineage.version != ref.version:
            raise ArtifactRejected("version_mismatch", f"signed for {lineage.version}, named {ref.version}", ref.name)
        if lineage.key_id not in self.keyring.trusted:
            raise ArtifactRejected("unknown_key", f"signed by {lineage.key_id!r}, not a trusted key", ref.name)
        if not self.keyring.verify(lineage.key_id, Lineage.stored_signed_fields(ref.metadata), lineage.signature):
            message = f"signature does not cover this lineage under {lineage.key_id}"
            raise ArtifactRejected("bad_signature", message, ref.name)
        if layout.version_time(lineage.version) > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ArtifactRejected("future_version", f"version is more than {MAX_CLOCK_SKEW} ahead of now", ref.name)
        return lineage

    def newest_valid(self, on_reject: OnReject | None = None, newer_than: str = "") -> LoadedModel | None:
        """The newest artifact that passes every check (only versions > newer_than are tried)."""
        for ref in reversed(self.list_versions()):
            if ref.version <= newer_than:
                return None
            try:
                return self.load(ref)
            except ArtifactRejected as e:
                if on_reject:
                    on_reject(ref, e)
        return None

    def _model_blobs(self) -> list[storage.Blob]:
        """One listing of models/model-* (with metadata and customTime), around any object that breaks it."""
        return self._listed_around(layout.MODEL_PREFIX, [MAX_SPLIT_LISTINGS])

    def _listed_around(self, prefix: str, budget: list[int]) -> list[storage.Blob]:
        """The objects under `prefix`; a listing that fails with 404 on a bucket that exists (fake-gcs-server's
        filesystem backend does that for an object whose metadata it could not store) is split into one listing per
        next character of a version, down to the object, which is left out. `budget` caps the listings."""
        try:
            blobs: list[storage.Blob] = self._call(gcs.listed, self.bucket, prefix=prefix)
            return blobs
        except gexc.NotFound:
            if prefix == layout.MODEL_PREFIX and not self._call(self.bucket.exists, timeout=REQUEST_TIMEOUT):
                raise
        partial = prefix.removeprefix(layout.MODEL_PREFIX)
        chars = layout.version_next_chars(partial)
        if not chars:
            log.warning("skipping unlistable objects under %s", prefix)
            return []
        if budget[0] < len(chars):
            raise StoreRefused(
                f"listing {prefix} fails, and splitting it found no end in {MAX_SPLIT_LISTINGS} listings"
            )
        budget[0] -= len(chars)
        return [blob for c in chars for blob in self._listed_around(prefix + c, budget)]

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a GCS call through core.gcs.call with this store's retry policy."""
        return gcs.call(self.retry, fn, *args, **kwargs)


def model_type_of(model: Any) -> str:
    """Pipeline steps joined with "+", e.g. StandardScaler+LogisticRegression."""
    steps = getattr(model, "steps", None)
    parts = [type(step).__name__ for _, step in steps] if steps else [type(model).__name__]
    return "+".join(parts)
