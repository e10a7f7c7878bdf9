"""The gRPC server as a real process, and the real V2 gRPC clients in a virtualenv of their own.

tritonclient[grpc] and kserve need protobuf < 7 while the project pins protobuf 7, so they are installed once into a
virtualenv cached outside the repository (``$XDG_CACHE_HOME/iris-serving``, keyed by the requirements) and each
scenario in ``grpc_clients/`` runs there as a subprocess that prints JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.emulators import Service, free_port

REPO = Path(__file__).resolve().parents[3]
CLIENTS = Path(__file__).resolve().parent / "grpc_clients"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "iris-serving"
KSERVE = "kserve==0.21.0"
START_TIMEOUT = 40.0


def client_requirements() -> list[str]:
    """The clients, with tritonclient and NumPy at the project's own versions."""
    return [f"tritonclient[grpc]=={version('tritonclient')}", KSERVE, f"numpy=={version('numpy')}"]


def ensure_client_venv(requirements: list[str]) -> Path:
    """The Python of a virtualenv holding ``requirements``, created on first use."""
    key = hashlib.sha256(" ".join(requirements).encode()).hexdigest()[:12]
    root = CACHE / f"grpc-clients-{key}"
    python = root / "bin" / "python"
    if (root / ".complete").exists():
        return python
    shutil.rmtree(root, ignore_errors=True)
    uv = shutil.which("uv")
    if uv:
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(root)], check=True, timeout=120)
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--python", str(python), *requirements], check=True, timeout=600
        )
    else:
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *requirements], check=True, timeout=600)
    (root / ".complete").touch()
    return python


def run_client(python: Path, script: str, *args: str, timeout: float = 120) -> Any:
    """Run one scenario; its JSON output, or a failure with its stderr."""
    result = subprocess.run(
        [str(python), str(CLIENTS / script), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def start_client(python: Path, script: str, *args: str) -> subprocess.Popen[str]:
    """Start one scenario with its output on a pipe (a scenario that prints progress lines before its result)."""
    return subprocess.Popen(
        [str(python), str(CLIENTS / script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="session")
def client_python() -> Path:
    return ensure_client_venv(client_requirements())


def start_grpc_server(env: dict[str, str], log_path: Path) -> Service:
    """``python -m predictor.grpc`` on a free port, in its own process group."""
    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "predictor.grpc"], cwd=REPO, env=env | {"GRPC_PORT": str(port)},
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return Service("predictor-grpc", f"127.0.0.1:{port}", process, log_path)


def wait_serving(service: Service, timeout: float = START_TIMEOUT) -> None:
    """Until the gRPC health service reports the inference service SERVING (a verified model is loaded)."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(service.host) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and service.alive():
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService"), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass  # not listening yet
            time.sleep(0.1)
    raise AssertionError(f"the gRPC server did not become ready:\n{service.log_path.read_text()[-3000:]}")


@pytest.fixture
def grpc_env(common_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), **common_env, "MODEL_EVENTS_ENABLED": "false",
        "RECONCILE_INTERVAL_WITHOUT_EVENTS": "0.5", "MAX_BODY_BYTES": "32768",
    }  # fmt: skip


@pytest.fixture
def grpc_server(grpc_env: dict[str, str], tmp_path: Path) -> Iterator[Service]:
    """A gRPC server on this test's bucket, stopped by PID at teardown (start it serving: publish a model first)."""
    service = start_grpc_server(grpc_env, tmp_path / "grpc.log")
    try:
        yield service
    finally:
        service.stop()
