"""How the images tests build here: a local stand-in for python:3.11-slim, buildah builds, registry pushes and pulls.

No registry holds ``python:3.11-slim-*`` here, so the base is a Debian bookworm root filesystem made with debootstrap
(Python 3.11, venv, pip and the machine's CA bundle, with which pip reaches the package index as on the host),
imported into buildah under a local name and handed to the unchanged Dockerfiles through their ``PYTHON_IMAGE``
build argument. The root filesystem and buildah's storage are cached outside the repository
(``IRIS_IMAGES_CACHE``, default ``/var/cache/iris-images``); the base image's tag carries a hash of what made it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("IRIS_IMAGES_CACHE", "/var/cache/iris-images"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3.11", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Left out of the root filesystem, as python:3.11-slim leaves them out (EXTERNALLY-MANAGED: it has none either).
TRIM = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale", "var/log")
TRIM_FILES = ("usr/lib/python3.11/EXTERNALLY-MANAGED",)
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
BASE_NAME = "localhost/iris-python"
BUILD_ARGS = ("PYTHON_IMAGE",)
"""The Dockerfiles' build arguments: the test build and cloudbuild.yaml both set exactly these."""
PROXY_ARGS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
"""Predefined build arguments, passed on from the environment when set, so the build's pip goes out as the host's."""
NICE = ("nice", "-n", "10")
STORE_BUDGET = int(os.environ.get("IRIS_IMAGES_STORE_BUDGET_GB", "20")) * 10**9
"""Above this many bytes of images, prune() empties the build store of all the current builds do not need."""


class ImageError(RuntimeError):
    """A container tool failed; the message carries its output."""


@dataclass(frozen=True)
class Storage:
    """One containers/storage store (vfs driver) shared by buildah and podman."""

    root: Path
    runroot: Path

    def flags(self) -> list[str]:
        return ["--root", str(self.root), "--runroot", str(self.runroot), "--storage-driver", "vfs"]

    def buildah(self, *args: str, nice: bool = False, timeout: float = 1800) -> str:
        return run([*(NICE if nice else ()), "buildah", *self.flags(), *args], timeout)

    def podman(self, *args: str) -> str:
        return run(["podman", *self.flags(), *args])

    def has_image(self, name: str) -> bool:
        found = subprocess.run(["buildah", *self.flags(), "inspect", "--type", "image", name], capture_output=True)
        return found.returncode == 0


def run(cmd: list[str], timeout: float = 1800) -> str:
    """Run a tool; its stdout, or ImageError with the tail of its output."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise ImageError(f"{' '.join(cmd[:4])} ... exited {done.returncode}:\n{tail}")
    return done.stdout.strip()


def cached_storage() -> Storage:
    """The build store, kept between runs so buildah's layer cache makes a second build quick."""
    return Storage(CACHE / "storage", CACHE / "run")


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """An exclusive lock in the cache directory (two test runs at once build the base only once)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def base_key() -> str:
    """Hash of everything that goes into the stand-in base."""
    recipe = {"suite": SUITE, "mirror": MIRROR, "packages": PACKAGES, "trim": TRIM + TRIM_FILES, "env": BASE_ENV}
    ca = hashlib.sha256(CA_BUNDLE.read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps({**recipe, "ca": ca}, sort_keys=True).encode()).hexdigest()[:16]


def base_image(storage: Storage) -> str:
    """The stand-in base's local name in ``storage``: imported from the cached root filesystem, made if missing."""
    key = base_key()
    name = f"{BASE_NAME}:3.11-{SUITE}-{key}"
    with locked("base"):
        if not storage.has_image(name):
            tarball = CACHE / f"rootfs-{key}.tar"
            if not tarball.exists():
                make_rootfs(tarball)
            import_rootfs(storage, tarball, name)
    return name


def make_rootfs(tarball: Path) -> None:
    """debootstrap the root filesystem, trim it, install the machine's CA bundle and pack it into ``tarball``."""
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        include = "--include=" + ",".join(PACKAGES)
        run([*NICE, "debootstrap", "--variant=minbase", include, SUITE, str(rootfs), MIRROR])
        for path in TRIM:
            shutil.rmtree(rootfs / path, ignore_errors=True)
            (rootfs / path).mkdir(parents=True, exist_ok=True)
        for path in TRIM_FILES:
            (rootfs / path).unlink(missing_ok=True)
        shutil.copyfile(CA_BUNDLE, rootfs / CA_BUNDLE.relative_to("/"))
        packed = Path(tmp) / "rootfs.tar"
        run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(packed), "."])
        packed.replace(tarball)


def import_rootfs(storage: Storage, tarball: Path, name: str) -> None:
    """A one-layer image from the packed root filesystem, with python:3.11-slim's PATH, LANG and CMD."""
    container = storage.buildah("from", "scratch")
    try:
        storage.buildah("add", container, str(tarball), "/")
        env = [arg for key, value in BASE_ENV.items() for arg in ("--env", f"{key}={value}")]
        storage.buildah("config", *env, "--cmd", "python3", container)
        storage.buildah("commit", container, name)
    finally:
        storage.buildah("rm", container)


def build_args(base: str) -> dict[str, str]:
    """Build arguments of a test build: the stand-in base, and the proxies of this environment if it has any."""
    return {"PYTHON_IMAGE": base, **{key: os.environ[key] for key in PROXY_ARGS if key in os.environ}}


def build(storage: Storage, dockerfile: Path, args: dict[str, str], iidfile: Path) -> str:
    """``buildah build`` (chroot isolation, layer cache); the image ID. Unchanged inputs reuse the image they made."""
    record = CACHE / "builds" / f"{dockerfile.name}-{build_key(dockerfile, args)}"
    if record.exists() and storage.has_image(image := record.read_text().strip()):
        return image
    flags = [arg for key, value in args.items() for arg in ("--build-arg", f"{key}={value}")]
    context = str(dockerfile.parent)
    cmd = ["build", "--isolation", "chroot", "--layers", "--iidfile", str(iidfile), *flags, "-f", str(dockerfile)]
    storage.buildah(*cmd, context, nice=True)
    image = iidfile.read_text().strip().removeprefix("sha256:")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(image)
    return image


def build_key(dockerfile: Path, args: dict[str, str]) -> str:
    """Hash of a build's inputs: the Dockerfile, .dockerignore, the build arguments and every file it COPYs from the
    context (without the __pycache__ and *.pyc that .dockerignore leaves out)."""
    context = dockerfile.parent
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode())
    for path in (dockerfile, context / ".dockerignore"):
        digest.update(path.read_bytes())
    for source in copied_sources(dockerfile.read_text()):
        top = context / source
        for path in sorted([top] if top.is_file() else top.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo", ".pyd"):
                digest.update(str(path.relative_to(context)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def copied_sources(dockerfile: str) -> list[str]:
    """Context paths of the Dockerfile's COPY instructions (those without --from)."""
    copies = re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile, re.M)
    return [source for line in copies for source in line.split()[:-1] if not source.startswith("--")]


def push(storage: Storage, image: str, destination: str, digestfile: Path) -> str:
    """Push to a plain-HTTP registry on loopback; the manifest digest the registry stored."""
    storage.buildah("push", "--tls-verify=false", "--digestfile", str(digestfile), image, f"docker://{destination}")
    return digestfile.read_text().strip()


def prune(storage: Storage, keep: list[str]) -> list[str]:
    """Over STORE_BUDGET (vfs keeps a full copy of every layer), remove every image but the stand-in base, ``keep``
    and their parents, newest first; the removed IDs. The layer cache of older builds goes with them."""
    listed = json.loads(storage.podman("images", "--all", "--format", "json") or "[]")
    if sum(int(image["Size"]) for image in listed) <= STORE_BUDGET:
        return []
    needed = {image["Id"] for image in listed if any(name.startswith(BASE_NAME) for name in image.get("Names") or [])}
    for image in keep:
        while image and image not in needed:
            needed.add(image)
            image = storage.podman("image", "inspect", "--format", "{{.Parent}}", image)
    removed = []
    for image in sorted(listed, key=lambda i: int(i["Created"]), reverse=True):
        if image["Id"] not in needed:
            done = subprocess.run(["buildah", *storage.flags(), "rmi", image["Id"]], capture_output=True)
            removed += [image["Id"]] if done.returncode == 0 else []
    for tarball in CACHE.glob("rootfs-*.tar"):
        if tarball.name != f"rootfs-{base_key()}.tar":
            tarball.unlink()
    return removed
