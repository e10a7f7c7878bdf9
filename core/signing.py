"""HMAC-SHA256 signatures over an artifact's whole lineage, as canonical JSON under a purpose label."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

PURPOSE = "iris-model-artifact-lineage/v1"
"""Bound into every signature, so a signature made for anything else never verifies as an artifact's."""


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def canonical(fields: Mapping[str, str]) -> bytes:
    """The signed bytes: purpose and fields as sorted, compact, ASCII-only JSON."""
    document = {"purpose": PURPOSE, "fields": dict(fields)}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(key: bytes, fields: Mapping[str, str]) -> str:
    """Signature over every lineage field (version, sha256, data_fingerprint, metrics, ...)."""
    return hmac.new(key, canonical(fields), hashlib.sha256).hexdigest()


def verify(key: bytes, fields: Mapping[str, str], signature: str) -> bool:
    """Constant-time check of `signature` against the fields; False for a non-ASCII signature."""
    return signature.isascii() and hmac.compare_digest(sign(key, fields), signature)
