"""Fixed Ed25519 test keys: the trainer's keyring, a stranger's, and PEM files for settings and subprocesses."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.signing import Ed25519Signer, Keyring

_TRAINER = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
SIGNER = Ed25519Signer(_TRAINER)
KEYRING = Keyring.of(signer=SIGNER)
"""Signs as the test trainer and trusts only its own key."""
READER = Keyring.of(trusted=[SIGNER])
"""What a predictor holds: the trainer's public key, no signing key."""
OTHER = Keyring.of(signer=Ed25519Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132)))))
"""Someone else's key, trusted by nobody."""


@functools.cache
def key_files() -> tuple[Path, Path]:
    """(private key PEM file, folder of trusted public keys) for the test trainer's key, removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="iris-test-keys-"))
    atexit.register(shutil.rmtree, folder, True)
    private = folder / "signing-key.pem"
    private.write_bytes(
        _TRAINER.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public = folder / "public"
    public.mkdir()
    (public / "trainer.pem").write_bytes(SIGNER.public_pem())
    (folder / "split-salt").write_text(SPLIT_SALT)
    return private, public


SPLIT_SALT = "test-split-salt"
"""The test trainer's secret split salt (in SPLIT_SALT_FILE)."""


def env() -> dict[str, str]:
    """Environment variables of a trainer or predictor subprocess using the test keys and split salt."""
    private, public = key_files()
    return {
        "MODEL_SIGNING_PRIVATE_KEY_FILE": str(private),
        "MODEL_PUBLIC_KEYS_DIR": str(public),
        "SPLIT_SALT_FILE": str(private.parent / "split-salt"),
    }


def settings() -> dict[str, Any]:
    """The same as settings fields (for `Settings.model_validate`)."""
    return {k.lower(): v for k, v in env().items()}
