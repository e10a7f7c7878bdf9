"""What is inside the pulled images: user, contents, size, installed packages, byte-compiled code."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from tests.images import build as images
from tests.images.conftest import NAMES, ROOT, Pulled
from tests.images.pods import podman, run_args

pytestmark = [pytest.mark.images, pytest.mark.timeout(1800)]  # the first test waits for the builds

SIZE_BUDGET_MB = 600
"""Uncompressed size of each image (measured: predictor 516 MB, trainer 516 MB on the bookworm stand-in)."""
COMPILERS = re.compile(
    r"^(cc|c\+\+|gcc|g\+\+|cpp|clang|clang\+\+|tcc|(x86_64|aarch64)-linux-gnu-(gcc|g\+\+|cpp))(-[\d.]+)?$"
)
SECRET_NAMES = re.compile(
    r"^(model-signing-key|admin-token|application_default_credentials\.json|id_(rsa|ecdsa|ed25519)|\.env|\.netrc|"
    r"\.pypirc|.*\.key)$"
)
SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIALS")
SKIP = {"proc", "sys", "dev"}
BASE_WHEELS = re.compile(r"/usr/share/python-wheels/|/ensurepip/_bundled/")


@dataclass(frozen=True)
class Opened:
    """A pulled image's root filesystem, mounted read-only on the host (``podman image mount``), and its config."""

    ref: str
    root: Path
    config: dict[str, Any]

    def files(self) -> Iterator[Path]:
        for top in self.root.iterdir():
            if top.name not in SKIP:
                yield top
                if top.is_dir() and not top.is_symlink():
                    yield from top.rglob("*")


@pytest.fixture(scope="module")
def opened(run_storage: images.Storage, pulled: dict[str, Pulled]) -> Iterator[dict[str, Opened]]:
    result = {}
    try:
        for name, image in pulled.items():
            mounted = podman(run_storage, "image", "mount", image.ref)
            assert mounted.returncode == 0, mounted.stderr
            config = json.loads(run_storage.buildah("inspect", "--type", "image", image.ref))["OCIv1"]["config"]
            result[name] = Opened(image.ref, Path(mounted.stdout.strip()), config)
        yield result
    finally:
        for item in result.values():
            podman(run_storage, "image", "unmount", item.ref)


@pytest.mark.parametrize("name", NAMES)
def test_pulled_by_digest_is_what_was_built(name: str, built: dict[str, str], pulled: dict[str, Pulled]) -> None:
    assert pulled[name].image_id == built[name]
    assert pulled[name].ref.endswith(f"/iris-{name}@{pulled[name].digest}")


@pytest.mark.parametrize("name", NAMES)
def test_runs_as_the_non_root_user(name: str, opened: dict[str, Opened]) -> None:
    assert opened[name].config["User"] == "10001:10001"
    passwd = (opened[name].root / "etc/passwd").read_text()
    assert re.search(r"^iris:x:10001:10001:", passwd, re.M)


@pytest.mark.parametrize("name", NAMES)
def test_no_compilers(name: str, opened: dict[str, Opened]) -> None:
    root = opened[name].root
    path = next(e.split("=", 1)[1] for e in opened[name].config["Env"] if e.startswith("PATH="))
    found = [
        f"{d}/{f.name}"
        for d in {*path.split(":"), "/usr/bin"}
        if (root / d[1:]).is_dir()
        for f in (root / d[1:]).iterdir()
        if COMPILERS.match(f.name)
    ]
    assert found == []
    assert not list((root / "usr/lib").glob("gcc/*/*/cc1*"))


@pytest.mark.parametrize("name", NAMES)
def test_only_the_app_packages_no_tests(name: str, opened: dict[str, Opened]) -> None:
    app = opened[name].root / "app"
    assert sorted(p.name for p in app.iterdir()) == sorted(["core", name])
    assert not [p for p in app.rglob("*") if p.name in ("tests", "conftest.py") or p.name.startswith("test_")]


@pytest.mark.parametrize("name", NAMES)
def test_no_pip_cache_no_wheels(name: str, opened: dict[str, Opened]) -> None:
    root = opened[name].root
    assert not (root / "build").exists()
    caches = [p for p in (root / "root/.cache", root / "nonexistent/.cache") if p.exists() and any(p.iterdir())]
    assert caches == []
    # the base's own wheels (what ensurepip and venv install) are part of any Python image; nothing else is
    wheels = [p for p in opened[name].files() if p.suffix == ".whl" and not BASE_WHEELS.search(str(p))]
    assert wheels == []


@pytest.mark.parametrize("name", NAMES)
def test_no_secrets(name: str, opened: dict[str, Opened]) -> None:
    env_names = [e.split("=", 1)[0] for e in opened[name].config["Env"]]
    assert [n for n in env_names if SECRET_ENV.search(n)] == []
    found = [p for p in opened[name].files() if SECRET_NAMES.match(p.name) or p.name in (".git", ".stack")]
    assert found == []


@pytest.mark.parametrize("name", NAMES)
def test_size_budget(name: str, run_storage: images.Storage, pulled: dict[str, Pulled]) -> None:
    done = podman(run_storage, "image", "inspect", "--format", "{{.Size}}", pulled[name].ref)
    size_mb = int(done.stdout) / 1e6
    print(f"\niris-{name}: {size_mb:.0f} MB uncompressed (budget {SIZE_BUDGET_MB} MB)")
    assert 0 < size_mb <= SIZE_BUDGET_MB


@pytest.mark.parametrize("name", NAMES)
def test_installed_packages_are_the_lock_exactly(
    name: str, run_storage: images.Storage, pulled: dict[str, Pulled]
) -> None:
    freeze = ("pip", "--python", "/opt/venv/bin/python", "freeze", "--all")
    flags = ["--read-only", "--tmpfs", "/tmp", "--env", "HOME=/tmp"]
    done = podman(run_storage, *run_args(f"iris-freeze-{uuid.uuid4().hex[:8]}", flags, {}), pulled[name].ref, *freeze)
    assert done.returncode == 0, done.stderr
    assert pins(done.stdout) == pins((ROOT / f"requirements-{name}.lock").read_text())


def pins(text: str) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.M)
    return {canonicalize_name(n): v for n, v in found}


@pytest.mark.parametrize("name", NAMES)
def test_byte_compiled_at_build_time(name: str, opened: dict[str, Opened]) -> None:
    app = opened[name].root / "app"
    sources = list(app.rglob("*.py"))
    assert sources
    missing = [s for s in sources if not (s.parent / "__pycache__" / f"{s.stem}.cpython-311.pyc").is_file()]
    assert missing == []
    venv = opened[name].root / "opt/venv"
    assert "version = 3.11" in (venv / "pyvenv.cfg").read_text()
    assert list(venv.glob("lib/python3.11/site-packages/sklearn/__pycache__/__init__.cpython-311.pyc"))
