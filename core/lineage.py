"""An artifact's lineage, kept in the GCS object's custom metadata (string values only)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from core import signing
from core.errors import ArtifactRejected

_JSON_FIELDS = ("metrics", "feature_names", "classes")


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

    def to_metadata(self) -> dict[str, str]:
        """Custom metadata for the object: JSON for structured fields, text for the rest."""
        fields = asdict(self)
        return {k: json.dumps(v) if k in _JSON_FIELDS else str(v) for k, v in fields.items()}

    def signed_fields(self) -> dict[str, str]:
        """Every metadata field but the signature itself: what the signature covers."""
        return {k: v for k, v in self.to_metadata().items() if k != "signature"}

    def signed_with(self, key: bytes) -> Lineage:
        """This lineage with its signature made by `key`."""
        return replace(self, signature=signing.sign(key, self.signed_fields()))

    def verifies(self, key: bytes) -> bool:
        """Whether the signature covers exactly these fields under `key`."""
        return signing.verify(key, self.signed_fields(), self.signature)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict[str, str] | None, name: str) -> Lineage:
        """Parse object metadata; an artifact without signature fields is `unsigned`."""
        metadata = metadata or {}
        if not metadata.get("signature") or not metadata.get("sha256"):
            raise ArtifactRejected("unsigned", "artifact has no signature in its metadata", name)
        try:
            values: dict[str, Any] = {k: metadata[k] for k in cls.__dataclass_fields__}
            values.update({k: json.loads(metadata[k]) for k in _JSON_FIELDS})
            values["row_count"] = int(values["row_count"])
        except (KeyError, ValueError, TypeError, RecursionError) as e:
            raise ArtifactRejected("bad_metadata", f"lineage metadata unreadable: {e}", name) from e
        return cls(**values)
