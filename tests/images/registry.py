"""A real registry on loopback: Debian's docker-registry (the distribution registry) with its own config and storage."""

from __future__ import annotations

import shutil
from pathlib import Path

import requests
import yaml

from devstack.emulators import Service, free_port, spawn
from tests.polling import wait_for


def start_registry(workdir: Path) -> Service | None:
    """Serve a plain-HTTP registry on a free loopback port, storing under ``workdir``; None when not installed."""
    exe = shutil.which("docker-registry")
    if exe is None:
        return None
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    (workdir / "config.yml").write_text(yaml.safe_dump(config))
    service = spawn("docker-registry", [exe, "serve", str(workdir / "config.yml")], port, workdir / "registry.log")
    try:
        wait_for(lambda: _answers(service), 15, "docker-registry to answer", service=service)
    except AssertionError:
        service.stop()
        raise
    return service


def _answers(service: Service) -> bool:
    try:
        return requests.get(f"{service.url}/v2/", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def manifest_digest(registry: Service, repository: str, reference: str) -> str:
    """The digest the registry reports for a tag or digest (OCI and Docker manifests both accepted)."""
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    url = f"{registry.url}/v2/{repository}/manifests/{reference}"
    response = requests.head(url, headers={"Accept": accept}, timeout=10)
    response.raise_for_status()
    return response.headers["Docker-Content-Digest"]
