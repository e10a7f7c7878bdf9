"""Each peer runs from its own virtualenv under ``bench/.venvs/`` (git-ignored), never from the project's deps.

The model libraries are pinned to the versions installed next to this script, so every server unpickles the very same
model with the very same code.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

VENVS = Path(__file__).resolve().parent.parent / ".venvs"
MODEL_LIBS = ("scikit-learn", "numpy", "scipy", "joblib")
BARE_FLASK = ("flask", "gunicorn")
MLSERVER = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0")
"""uvloop 0.22 crashes MLServer 1.7.1's parallel inference workers; 0.21.0 does not."""


def pinned(names: tuple[str, ...]) -> list[str]:
    """``name==version`` of each package as installed in this interpreter."""
    return [f"{name}=={version(name)}" for name in names]


def bare_flask_requirements() -> list[str]:
    return pinned(BARE_FLASK + MODEL_LIBS)


def mlserver_requirements() -> list[str]:
    return [*MLSERVER, *pinned(MODEL_LIBS)]


def ensure_venv(name: str, requirements: list[str]) -> Path:
    """Create (once per requirement set) ``bench/.venvs/<name>`` with ``requirements``; return its ``bin/``."""
    root = VENVS / name
    stamp = root / f".installed-{hashlib.sha256(' '.join(requirements).encode()).hexdigest()[:12]}"
    if stamp.exists():
        return root / "bin"
    shutil.rmtree(root, ignore_errors=True)
    print(f"[bench] creating {root} ({' '.join(requirements)})", file=sys.stderr, flush=True)
    uv = shutil.which("uv")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if uv:
        subprocess.run([uv, "venv", "--quiet", "--python", python, str(root)], check=True)
        install = [uv, "pip", "install", "--quiet", "--python", str(root / "bin" / "python")]
    else:
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
        install = [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*install, *requirements], check=True)
    stamp.touch()
    return root / "bin"
