"""Signatures over an artifact's whole lineage, as canonical JSON under a purpose label.

Ed25519 by default: the trainer signs with a private key, readers hold only public keys, each trusted under its
`key_id` (derived from the key), so a new signing key leaves the models signed with a still-trusted older one valid.
HMAC-SHA256 with one shared key remains an explicit option (MODEL_SIGNING_ALGORITHM=hmac-sha256).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PURPOSE = "iris-model-artifact-lineage/v1"
"""Bound into every signature, so a signature made for anything else never verifies as an artifact's."""
ED25519 = "ed25519"
HMAC_SHA256 = "hmac-sha256"
KEY_ID_LABEL = b"iris-model-key-id\x00"
"""Prefixed to an HMAC secret before hashing it into a key id."""
ED25519_HEX_LENGTH = 128
HMAC_SHA256_HEX_LENGTH = 64
_LOWER_HEX = re.compile(r"[0-9a-f]+")


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def canonical_hex(signature: str, length: int) -> bool:
    """Whether `signature` is exactly `length` lowercase hex digits (no spaces, no capitals: the one spelling)."""
    return len(signature) == length and _LOWER_HEX.fullmatch(signature) is not None


def canonical(fields: Mapping[str, str], purpose: str = PURPOSE) -> bytes:
    """The signed bytes: purpose and fields as sorted, compact, ASCII-only JSON."""
    document = {"purpose": purpose, "fields": dict(fields)}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class Verifier(Protocol):
    """One trusted key: checks signatures made under its key id."""

    key_id: str
    signature_length: int
    """Hex digits of this key's signatures."""

    def verify(self, message: bytes, signature: str) -> bool: ...


class Signer(Verifier, Protocol):
    """A key that also signs (the trainer's)."""

    def sign(self, message: bytes) -> str: ...


class Ed25519Verifier:
    """A trusted Ed25519 public key; its id is `ed25519:` and 16 hex digits of the raw key's SHA-256."""

    signature_length = ED25519_HEX_LENGTH

    def __init__(self, public: Ed25519PublicKey) -> None:
        self.public = public
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = f"{ED25519}:{sha256_hex(raw)[:16]}"

    def verify(self, message: bytes, signature: str) -> bool:
        try:
            self.public.verify(bytes.fromhex(signature), message)
        except (ValueError, InvalidSignature):
            return False
        return True

    def public_pem(self) -> bytes:
        """The key as PEM (SubjectPublicKeyInfo), what readers are given."""
        return self.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class Ed25519Signer(Ed25519Verifier):
    """The trainer's private key; it verifies its own signatures too."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        super().__init__(private.public_key())
        self._private = private

    def sign(self, message: bytes) -> str:
        return self._private.sign(message).hex()


class HmacKey:
    """The HMAC-SHA256 option: one shared secret signs and verifies; its id hashes the secret under a label."""

    signature_length = HMAC_SHA256_HEX_LENGTH

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self.key_id = f"{HMAC_SHA256}:{sha256_hex(KEY_ID_LABEL + secret)[:16]}"

    def sign(self, message: bytes) -> str:
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, message: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)


@dataclass(frozen=True)
class Keyring:
    """The keys a process trusts, by key id, and the one it signs with (trainer only)."""

    trusted: Mapping[str, Verifier] = field(default_factory=dict)
    signer: Signer | None = None

    @classmethod
    def of(cls, signer: Signer | None = None, trusted: Iterable[Verifier] = ()) -> Keyring:
        """A keyring trusting `trusted` and the signer's own key."""
        keys = list(trusted) + ([signer] if signer else [])
        return cls({k.key_id: k for k in keys}, signer)

    def sign(self, fields: Mapping[str, str], purpose: str = PURPOSE) -> str:
        """Signature over every field (a lineage's: key_id, version, sha256, data_fingerprint, metrics, ...) under
        `purpose` (an artifact's lineage unless told)."""
        if self.signer is None:
            raise RuntimeError("this keyring holds no signing key")
        return self.signer.sign(canonical(fields, purpose))

    def verify(self, key_id: str, fields: Mapping[str, str], signature: str, purpose: str = PURPOSE) -> bool:
        """Whether a trusted key `key_id` signed exactly these field strings under `purpose`; False unless the
        signature is the canonical spelling (lowercase hex of the key's exact length)."""
        key = self.trusted.get(key_id)
        return (
            key is not None
            and canonical_hex(signature, key.signature_length)
            and all(isinstance(v, str) for v in fields.values())
            and key.verify(canonical(fields, purpose), signature)
        )


def generate_ed25519() -> tuple[bytes, bytes]:
    """A new key pair as PEM: (private PKCS#8 unencrypted, public SubjectPublicKeyInfo)."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, Ed25519Verifier(private.public_key()).public_pem()


def load_signer(pem: bytes) -> Ed25519Signer:
    """An Ed25519 private key from PEM; ValueError for anything else."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except UnsupportedAlgorithm as e:
        raise ValueError(str(e)) from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"not an Ed25519 private key ({type(key).__name__})")
    return Ed25519Signer(key)


def load_verifier(pem: bytes) -> Ed25519Verifier:
    """An Ed25519 public key from PEM; ValueError for anything else (a private key included)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except UnsupportedAlgorithm as e:
        raise ValueError(str(e)) from e
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"not an Ed25519 public key ({type(key).__name__})")
    return Ed25519Verifier(key)
