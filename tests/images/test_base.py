"""The stand-in for python:3.11-slim: the Python the Dockerfiles expect, and pip's way to the package index."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from tests.images import build as images
from tests.images.pods import podman, run_args

pytestmark = [pytest.mark.images, pytest.mark.timeout(1800)]  # the first test may debootstrap the base

# pip's own CA bundle (Debian points pip's vendored certifi at the system bundle)
CHECK = (
    "import sys, venv, pip, hashlib, shutil; from pip._vendor import certifi; "
    "print(sys.version_info[:2] == (3, 11), pip.__version__, shutil.which('python'), shutil.which('pip'), "
    "hashlib.sha256(open(certifi.where(), 'rb').read()).hexdigest())"
)


def test_base_has_python_3_11_pip_venv_and_the_machines_ca_bundle(build_storage: images.Storage, base: str) -> None:
    name = f"iris-base-{uuid.uuid4().hex[:8]}"
    done = podman(build_storage, *run_args(name, ["--read-only"], {}), base, "python", "-c", CHECK)
    assert done.returncode == 0, done.stderr
    is_311, pip_version, python, pip, ca = done.stdout.split()
    assert is_311 == "True"
    assert pip_version.split(".")[0].isdigit()
    assert (python, pip) == ("/usr/bin/python", "/usr/bin/pip")
    assert ca == hashlib.sha256(images.CA_BUNDLE.read_bytes()).hexdigest()
    assert base.startswith(f"{images.BASE_NAME}:3.11-{images.SUITE}-{images.base_key()}")
