"""Session fixtures: the stand-in base, both images built once, pushed to a loopback registry and pulled back by digest.

Builds use the cached store (build.cached_storage); everything after the push uses a fresh store of this
session, so what the tests inspect and run is what came out of the registry.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.emulators import Service
from tests.images import build as images
from tests.images.pods import podman
from tests.images.registry import manifest_digest, start_registry

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("predictor", "trainer")
TOOLS = ("buildah", "podman", "runc", "debootstrap", "docker-registry")


@dataclass(frozen=True)
class Pulled:
    """An image as pulled back from the registry: ``ref`` is repository@digest."""

    name: str
    ref: str
    digest: str
    image_id: str


@pytest.fixture(scope="session")
def build_storage() -> images.Storage:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (.ci/run installs them)")
    return images.cached_storage()


@pytest.fixture(scope="session")
def base(build_storage: images.Storage) -> str:
    return images.base_image(build_storage)


@pytest.fixture(scope="session")
def built(build_storage: images.Storage, base: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Image ID of each image, built from the unchanged Dockerfiles with the stand-in base."""
    work = tmp_path_factory.mktemp("build")
    args = images.build_args(base)
    result = {name: images.build(build_storage, ROOT / f"Dockerfile.{name}", args, work / name) for name in NAMES}
    images.prune(build_storage, list(result.values()))
    return result


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, build_storage: images.Storage) -> Iterator[Service]:
    service = start_registry(tmp_path_factory.mktemp("registry"))
    assert service is not None
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def pushed(
    build_storage: images.Storage, built: dict[str, str], registry: Service, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Digest of each image in the registry, pushed under a tag of this session."""
    work, tag = tmp_path_factory.mktemp("push"), uuid.uuid4().hex[:12]
    digests = {}
    for name, image_id in built.items():
        destination = f"{registry.host}/iris-{name}:{tag}"
        digests[name] = images.push(build_storage, image_id, destination, work / name)
        assert manifest_digest(registry, f"iris-{name}", tag) == digests[name]
    return digests


@pytest.fixture(scope="session")
def run_storage(tmp_path_factory: pytest.TempPathFactory, build_storage: images.Storage) -> Iterator[images.Storage]:
    """A store of this session only: it starts empty, so every image in it came from the registry."""
    work = tmp_path_factory.mktemp("run-storage")
    storage = images.Storage(work / "storage", work / "run")
    yield storage
    podman(storage, "rm", "--all", "--force")
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def pulled(run_storage: images.Storage, registry: Service, pushed: dict[str, str]) -> dict[str, Pulled]:
    result = {}
    for name, digest in pushed.items():
        ref = f"{registry.host}/iris-{name}@{digest}"
        done = podman(run_storage, "pull", "--quiet", "--tls-verify=false", ref, timeout=900)
        assert done.returncode == 0, done.stderr
        result[name] = Pulled(name, ref, digest, done.stdout.strip())
    return result
