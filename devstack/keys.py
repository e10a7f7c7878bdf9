"""The local stack's Ed25519 signing key pair, made once in the state folder (never committed)."""

from __future__ import annotations

import os
from pathlib import Path

from core import signing

PRIVATE = "signing-key.pem"
PUBLIC = "public"


def ensure_pair(folder: Path) -> tuple[Path, Path]:
    """Create `folder/signing-key.pem` (mode 600) and `folder/public/<key id>.pem` once; return both paths.

    The trainer gets the private key file, the predictor only the public folder.
    """
    private, public = folder / PRIVATE, folder / PUBLIC
    if not private.exists():
        folder.mkdir(parents=True, exist_ok=True)
        private_pem, _ = signing.generate_ed25519()
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(private_pem)
    signer = signing.load_signer(private.read_bytes())
    public.mkdir(exist_ok=True)
    own = public / (signer.key_id.replace(":", "-") + ".pem")
    if not own.exists():
        own.write_bytes(signer.public_pem())
    return private, public


def env(folder: Path) -> dict[str, str]:
    """Signing variables for a trainer or predictor using the pair in `folder` (created if missing)."""
    private, public = ensure_pair(folder)
    return {"MODEL_SIGNING_PRIVATE_KEY_FILE": str(private.resolve()), "MODEL_PUBLIC_KEYS_DIR": str(public.resolve())}


def keyring(folder: Path) -> signing.Keyring:
    """The pair in `folder` as a keyring that signs (for benchmarks publishing directly)."""
    private, _ = ensure_pair(folder)
    return signing.Keyring.of(signer=signing.load_signer(private.read_bytes()))
