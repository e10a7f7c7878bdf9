"""The gRPC server in the build and the manifests: stubs generated (never committed) with the locked grpcio-tools,
a second container of the predictor pod on GRPC_PORT with gRPC health probes, and a `grpc` port on the Service."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from predictor.grpc.server import SERVICE
from predictor.settings import PredictorSettings
from tests.deploy.conftest import ROOT, base_resources, find

RESOURCES = base_resources()
PROTOS = "predictor/protos"


def locked(name: str, lock: str = "requirements-dev.lock") -> str:
    match = re.search(rf"^{re.escape(name)}==(\S+)$", (ROOT / lock).read_text(), re.MULTILINE)
    assert match, f"{name} is not in {lock}"
    return match.group(1)


def containers() -> dict[str, dict[str, Any]]:
    spec = find(RESOURCES, "Deployment", "iris-predictor")["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def test_stubs_are_generated_not_committed() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (a build's source archive): nothing to tell committed from generated")
    tracked = subprocess.run(["git", "ls-files", PROTOS], cwd=ROOT, capture_output=True, text=True, check=True)
    assert sorted(tracked.stdout.split()) == [f"{PROTOS}/__init__.py", f"{PROTOS}/grpc_predict_v2.proto"]
    ignored = subprocess.run(
        ["git", "check-ignore", f"{PROTOS}/grpc_predict_v2_pb2.py", f"{PROTOS}/grpc_predict_v2_pb2_grpc.py"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ignored.returncode == 0, "the generated stubs must be git-ignored"
    assert "grpc_tools.protoc" in (ROOT / "Makefile").read_text()


def test_the_image_generates_them_with_the_locked_grpcio_tools() -> None:
    dockerfile = (ROOT / "Dockerfile.predictor").read_text()
    build, runtime = dockerfile.split("\nFROM ", 2)[1:]
    assert f"grpcio-tools=={locked('grpcio-tools')}" in build
    assert "grpc_tools.protoc" in build
    assert f"COPY --from=build /build/{PROTOS}/ ./{PROTOS}/" in runtime
    assert "grpcio-tools" not in (ROOT / "requirements-predictor.lock").read_text(), (
        "a build tool, not a runtime dependency"
    )


def test_the_grpc_container_serves_grpc_port_with_health_probes() -> None:
    grpc = containers()["grpc"]
    assert grpc["image"] == containers()["predictor"]["image"]
    assert grpc["command"] == ["python", "-m", "predictor.grpc"]
    ports = {p["name"]: p["containerPort"] for p in grpc["ports"]}
    env = {e["name"]: e.get("value") for e in grpc["env"]}
    assert int(env["GRPC_PORT"]) == ports["grpc"] == PredictorSettings.model_fields["grpc_port"].default
    workers = {e["name"]: e.get("value") for e in containers()["predictor"]["env"]}
    assert env["PROMETHEUS_MULTIPROC_DIR"] == workers["PROMETHEUS_MULTIPROC_DIR"], "its samples join the pod's"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert grpc[probe]["grpc"]["port"] == ports["grpc"]
    assert grpc["readinessProbe"]["grpc"]["service"] == SERVICE
    assert "service" not in grpc["livenessProbe"]["grpc"]


def test_the_service_exposes_grpc_as_h2c() -> None:
    ports = {p["name"]: p for p in find(RESOURCES, "Service")["spec"]["ports"]}
    assert ports["grpc"]["targetPort"] == "grpc"
    assert ports["grpc"]["appProtocol"] == "kubernetes.io/h2c"
