"""An artifact's lineage, kept in the GCS object's custom metadata (string values only)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from core import signing
from core.errors import ArtifactRejected
from core.states import Trigger

_JSON_FIELDS = ("metrics", "feature_names", "classes", "data_objects", "data_to_publish_s")
_INT_FIELDS = ("row_count", "data_objects_total")
_OPTIONAL_JSON_FIELDS = ("evaluation", "reference")
"""Written only when set, so artifacts signed before the field existed keep verifying."""
_OPTIONAL_INT_FIELDS = ("feedback_rows",)
"""Written only when not None, for the same reason."""
_OPTIONAL = (*_OPTIONAL_JSON_FIELDS, *_OPTIONAL_INT_FIELDS)
_CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]*)")
"""ASCII digits only, no sign but minus, no leading zeros or spaces: the only spelling str(int) produces."""
LISTED_OBJECTS_BYTES = 2048
"""At most this much of the data object list goes into the metadata, counted as sent (see sent_bytes)."""
METADATA_VALUE_BYTES = 4096
"""GCS's cap on one custom metadata value."""
METADATA_TOTAL_BYTES = 8192
"""GCS's cap on all custom metadata of an object, keys and values."""
SIGNATURE_PLACEHOLDER = "0" * signing.ED25519_HEX_LENGTH
"""The longest signature, counted while the metadata is fitted before signing."""


def sent_bytes(text: str) -> int:
    """Bytes of `text` as the JSON API request carries it: JSON-escaped with ASCII only, without the quotes (one
    emoji in a name is 12 bytes once data_objects is JSON, 14 once that value is escaped again)."""
    return len(json.dumps(text)) - 2


def metadata_bytes(metadata: dict[str, str]) -> int:
    """What `metadata` counts against METADATA_TOTAL_BYTES: every key and value as sent."""
    return sum(sent_bytes(k) + sent_bytes(v) for k, v in metadata.items())


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
            size += sent_bytes(json.dumps(name)) + 2
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
    reference: dict[str, Any] = field(default_factory=dict)
    """Statistics of its training data that served traffic is compared with (core.drift.Reference.to_lineage):
    per-feature bin counts on fixed bins and class counts, about 600 bytes."""
    feedback_rows: int | None = None
    """Training rows it learned from feedback (data/ files named `feedback-*`, after the influence caps and
    exclusions); None for artifacts trained before the field existed."""

    def to_metadata(self) -> dict[str, str]:
        """Custom metadata for the object: JSON for structured fields, text for the rest (empty optional ones left
        out)."""
        fields = {
            k: v
            for k, v in asdict(self).items()
            if (v or k not in _OPTIONAL_JSON_FIELDS) and (v is not None or k not in _OPTIONAL_INT_FIELDS)
        }
        return {k: _encode(k, v) for k, v in fields.items()}

    def signed_fields(self) -> dict[str, str]:
        """Every metadata field but the signature itself: what the signature covers."""
        return {k: v for k, v in self.to_metadata().items() if k != "signature"}

    def signed_with(self, keyring: signing.Keyring) -> Lineage:
        """This lineage with the keyring's signing key id and its signature, its metadata fitted to GCS's limits."""
        if keyring.signer is None:
            raise ValueError("the keyring holds no signing key")
        unsigned = replace(self, key_id=keyring.signer.key_id).fitted()
        return replace(unsigned, signature=keyring.sign(unsigned.signed_fields()))

    def fitted(self) -> Lineage:
        """This lineage with `data_objects` cut to its newest names so that every value fits METADATA_VALUE_BYTES
        and all of the metadata METADATA_TOTAL_BYTES, as sent (data_objects_total keeps the full count).

        The other fields are bounded by the code that sets them; ValueError if they alone do not fit.
        """
        metadata = replace(self, signature=SIGNATURE_PLACEHOLDER, data_objects=[]).to_metadata()
        room = min(METADATA_VALUE_BYTES, METADATA_TOTAL_BYTES - metadata_bytes(metadata) + sent_bytes("[]"))
        oversized = sorted(k for k, v in metadata.items() if sent_bytes(v) > METADATA_VALUE_BYTES)
        if room < sent_bytes("[]") or oversized:
            raise ValueError(f"lineage metadata over GCS's limits without any data objects ({oversized})")
        keep = len(self.data_objects)
        while sent_bytes(json.dumps(self.data_objects[:keep])) > room:
            keep -= 1
        return self if keep == len(self.data_objects) else replace(self, data_objects=self.data_objects[:keep])

    def verifies(self, keyring: signing.Keyring) -> bool:
        """Whether a key the keyring trusts, the one named by key_id, signed exactly these fields."""
        return keyring.verify(self.key_id, self.signed_fields(), self.signature)

    @classmethod
    def stored_signed_fields(cls, metadata: dict[str, str]) -> dict[str, str]:
        """The exact stored strings a signature covers: every lineage field but the signature, as found."""
        return {k: metadata[k] for k in cls.__dataclass_fields__ if k != "signature" and k in metadata}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict[str, str] | None, name: str) -> Lineage:
        """Parse object metadata; an artifact without signature fields is `unsigned`.

        Every field must be stored exactly as to_metadata writes it (`bad_metadata` otherwise): ASCII digits for
        integers, JSON without duplicate keys, the one serialisation of each value. So the stored strings a
        signature is checked over are the only spelling of the values a reader acts on.
        """
        metadata = metadata or {}
        if not metadata.get("signature") or not metadata.get("sha256"):
            raise ArtifactRejected("unsigned", "artifact has no signature in its metadata", name)
        try:
            required = [k for k in cls.__dataclass_fields__ if k not in _OPTIONAL]
            values: dict[str, Any] = {k: metadata[k] for k in required}
            present = [*_JSON_FIELDS, *(k for k in _OPTIONAL_JSON_FIELDS if k in metadata)]
            values.update({k: json.loads(metadata[k], object_pairs_hook=_unique_keys) for k in present})
            if not all(isinstance(values.get(k, {}), dict) for k in _OPTIONAL_JSON_FIELDS):
                raise TypeError(f"{', '.join(_OPTIONAL_JSON_FIELDS)} must be a JSON object")
            values.update({k: _canonical_int(k, values[k]) for k in _INT_FIELDS})
            values.update({k: _canonical_int(k, metadata[k]) for k in _OPTIONAL_INT_FIELDS if k in metadata})
            lineage = cls(**values)
            stored = lineage.to_metadata()
        except (KeyError, ValueError, TypeError, RecursionError) as e:
            raise ArtifactRejected("bad_metadata", f"lineage metadata unreadable: {e}", name) from e
        odd = sorted(k for k, v in stored.items() if metadata[k] != v)
        if odd:
            raise ArtifactRejected("bad_metadata", f"lineage fields not in canonical form: {', '.join(odd)}", name)
        return lineage


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; ValueError on a duplicate key (json.loads would keep the last silently)."""
    values = dict(pairs)
    if len(values) != len(pairs):
        raise ValueError(f"duplicate key in {sorted(k for k, _ in pairs)}")
    return values


def _canonical_int(key: str, text: str) -> int:
    """An integer field spelt only as str(int) spells it (int() would also take " 000150 " or Arabic-Indic digits)."""
    if not isinstance(text, str) or not _CANONICAL_INT.fullmatch(text):
        raise ValueError(f"{key} is not a canonical integer: {text!r}")
    return int(text)
