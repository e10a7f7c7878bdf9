"""The local stack's Ed25519 signing key pair, the trainer's split salt and the feedback token, made once in the
state folder.

Never committed: both live in the stack's state folder.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from core import signing

PRIVATE = "signing-key.pem"
PUBLIC = "public"
SALT = "split-salt"
FEEDBACK_TOKEN_FILE = "feedback.token"  # noqa: S105 - a file name


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


def ensure_secret(folder: Path, name: str) -> Path:
    """Create `folder/<name>` (mode 600, random) once and return its path."""
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return path


def ensure_salt(folder: Path) -> Path:
    """Create `folder/split-salt` once: the trainer's secret SPLIT_SALT_FILE."""
    return ensure_secret(folder, SALT)


def env(folder: Path) -> dict[str, str]:
    """Signing variables, the split salt and the feedback token file for a trainer or predictor using `folder`
    (created if missing)."""
    private, public = ensure_pair(folder)
    return {
        "MODEL_SIGNING_PRIVATE_KEY_FILE": str(private.resolve()),
        "MODEL_PUBLIC_KEYS_DIR": str(public.resolve()),
        "SPLIT_SALT_FILE": str(ensure_salt(folder).resolve()),
        "FEEDBACK_TOKEN_FILE": str(ensure_secret(folder, FEEDBACK_TOKEN_FILE).resolve()),
    }


def keyring(folder: Path) -> signing.Keyring:
    """The pair in `folder` as a keyring that signs (for benchmarks publishing directly)."""
    private, _ = ensure_pair(folder)
    return signing.Keyring.of(signer=signing.load_signer(private.read_bytes()))
