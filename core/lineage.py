"""An artifact's lineage, kept in the GCS object's custom metadata (string values only)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from core import signing
from core.errors import ArtifactRejected
from core.states import Trigger

_JSON_FIELDS = ("metrics", "feature_names", "classes", "data_objects", "data_to_publish_s")
_INT_FIELDS = ("row_count", "data_objects_total")
_OPTIONAL_JSON_FIELDS = ("evaluation",)
"""Written only when set, so artifacts signed before the field existed keep verifying."""
LISTED_OBJECTS_BYTES = 2048
"""At most this much of the data object list goes into the metadata (GCS allows 8 KiB of custom metadata in all)."""


@dataclass(frozen=True)
class Provenance:
    """What started a training run and the data objects it learned from (`name#generation`, newest first)."""

    trigger: Trigger = Trigger.MANUAL
    objects: tuple[str, ...] = ()
    newest_finalized: datetime | None = None

    def listed(self) -> list[str]:
        """The newest objects whose names fit in LISTED_OBJECTS_BYTES (all of them for a normal data set)."""
        listed, size = [], 0
        for name in self.objects:
            size += len(name.encode()) + 4
            if size > LISTED_OBJECTS_BYTES:
                break
            listed.append(name)
        return listed

    def delay_to(self, moment: datetime) -> float | None:
        """Seconds from the newest data object's finalize to `moment`, if that finalize time is known."""
        return round((moment - self.newest_finalized).total_seconds(), 3) if self.newest_finalized else None


def _encode(name: str, value: Any) -> str:
    if name in _OPTIONAL_JSON_FIELDS:
        return json.dumps(value, separators=(",", ":"))  # compact: custom metadata is small
    return json.dumps(value) if name in _JSON_FIELDS else str(value)


DIRECT = Provenance()
"""A model published directly (tests, benchmarks): manual, with no data objects."""


@dataclass(frozen=True)
class Lineage:
    """Where a model came from and the signature that vouches for it."""

    version: str
    created_at: str
    sha256: str
    signature: str
    sklearn_version: str
    python_version: str
    model_type: str
    data_fingerprint: str
    row_count: int
    metrics: dict[str, float]
    feature_names: list[str]
    classes: list[str]
    trigger: str = Trigger.MANUAL.value
    data_objects: list[str] = field(default_factory=list)
    data_objects_total: int = 0
    data_to_publish_s: float | None = None
    key_id: str = ""
    """Which trusted key signed it (`ed25519:<16 hex>`); signed along with everything else."""
    evaluation: dict[str, Any] = field(default_factory=dict)
    """Its figures on the trusted evaluation set: `set` (its version), `accuracy` and per-class `recall`."""

    def to_metadata(self) -> dict[str, str]:
        """Custom metadata for the object: JSON for structured fields, text for the rest (empty optional ones left
        out)."""
        fields = {k: v for k, v in asdict(self).items() if v or k not in _OPTIONAL_JSON_FIELDS}
        return {k: _encode(k, v) for k, v in fields.items()}

    def signed_fields(self) -> dict[str, str]:
        """Every metadata field but the signature itself: what the signature covers."""
        return {k: v for k, v in self.to_metadata().items() if k != "signature"}

    def signed_with(self, keyring: signing.Keyring) -> Lineage:
        """This lineage with the keyring's signing key id and its signature."""
        if keyring.signer is None:
            raise ValueError("the keyring holds no signing key")
        unsigned = replace(self, key_id=keyring.signer.key_id)
        return replace(unsigned, signature=keyring.sign(unsigned.signed_fields()))

    def verifies(self, keyring: signing.Keyring) -> bool:
        """Whether a key the keyring trusts, the one named by key_id, signed exactly these fields."""
        return keyring.verify(self.key_id, self.signed_fields(), self.signature)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict[str, str] | None, name: str) -> Lineage:
        """Parse object metadata; an artifact without signature fields is `unsigned`."""
        metadata = metadata or {}
        if not metadata.get("signature") or not metadata.get("sha256"):
            raise ArtifactRejected("unsigned", "artifact has no signature in its metadata", name)
        try:
            required = [k for k in cls.__dataclass_fields__ if k not in _OPTIONAL_JSON_FIELDS]
            values: dict[str, Any] = {k: metadata[k] for k in required}
            values.update({k: json.loads(metadata[k]) for k in _JSON_FIELDS})
            values.update({k: json.loads(metadata[k]) for k in _OPTIONAL_JSON_FIELDS if k in metadata})
            if not all(isinstance(values.get(k, {}), dict) for k in _OPTIONAL_JSON_FIELDS):
                raise TypeError(f"{', '.join(_OPTIONAL_JSON_FIELDS)} must be a JSON object")
            values.update({k: int(values[k]) for k in _INT_FIELDS})
        except (KeyError, ValueError, TypeError, RecursionError) as e:
            raise ArtifactRejected("bad_metadata", f"lineage metadata unreadable: {e}", name) from e
        return cls(**values)
