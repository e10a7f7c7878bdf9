"""HMAC-SHA256 signatures over an artifact's version and content hash."""

from __future__ import annotations

import hashlib
import hmac


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def sign(key: bytes, version: str, digest: str) -> str:
    """Signature binding a version name to the content with that SHA-256 digest."""
    return hmac.new(key, f"{version}\n{digest}".encode(), hashlib.sha256).hexdigest()


def verify(key: bytes, version: str, digest: str, signature: str) -> bool:
    """Constant-time check of `signature` against version and digest; False for any non-ASCII input."""
    if not (version.isascii() and digest.isascii() and signature.isascii()):
        return False
    return hmac.compare_digest(sign(key, version, digest), signature)
