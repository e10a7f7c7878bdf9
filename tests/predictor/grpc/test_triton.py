"""``python -m predictor.grpc`` as a real process, driven by tritonclient[grpc] (raw tensors both ways): health,
metadata, inference, errors as gRPC status codes, a hot swap seen by a client, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.lineage import Lineage
from devstack.emulators import Service
from tests.predictor.conftest import publish
from tests.predictor.grpc.grpc_fixtures import (
    REPO,
    client_python,
    grpc_env,
    grpc_server,
    run_client,
    start_client,
    start_grpc_server,
    wait_serving,
)

pytestmark = pytest.mark.integration
__all__ = ["client_python", "grpc_env", "grpc_server"]  # fixtures


@pytest.fixture
def served(store, fitted_model) -> Lineage:
    return publish(store, fitted_model)


@pytest.fixture
def ready_server(served: Lineage, grpc_server: Service) -> Service:
    wait_serving(grpc_server)
    return grpc_server


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_the_triton_grpc_client(ready_server: Service, served: Lineage, client_python: Path, datatype: str) -> None:
    out = run_client(client_python, "triton_scenario.py", ready_server.host, datatype)
    assert (out["live"], out["ready"], out["model_ready"]) == (True, True, True)
    assert out["metadata"]["name"] == "iris"
    assert out["metadata"]["versions"] == [served.version]
    assert [i["shape"] for i in out["metadata"]["inputs"]] == [["-1", "4"]]
    assert [o["name"] for o in out["metadata"]["outputs"]] == ["predict", "predict_proba"]
    assert out["server_metadata"]["name"] == "iris-predictor"
    one = out["one"]
    assert (one["id"], one["model_version"], one["outputs"]) == ("t-1", served.version, ["predict"])
    assert one["raw"] is True
    assert one["predict"] == [0, 2]
    every = out["every"]
    assert every["outputs"] == ["predict", "predict_proba"]
    assert every["predict"] == [0, 2]
    proba = np.array(every["proba"])
    assert proba.shape == (2, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba.argmax(axis=1).tolist() == [0, 2]


def test_errors_are_status_codes_with_the_field_named(ready_server: Service, client_python: Path) -> None:
    errors = run_client(client_python, "triton_scenario.py", ready_server.host, "FP32")["errors"]
    expected = {
        "nan": ("INVALID_ARGUMENT", "inputs[0].data[0].petal_width"),
        "shape": ("INVALID_ARGUMENT", "inputs[0].shape: expected [N, 4]"),
        "datatype": ("INVALID_ARGUMENT", "inputs[0].datatype: expected FP32 or FP64"),
        "batch": ("INVALID_ARGUMENT", "MAX_BATCH_SIZE"),  # 1,200 FP32 rows: 19,200 bytes
        "too_large": ("RESOURCE_EXHAUSTED", "larger than max"),  # 4,000 FP64 rows: 128,000 bytes > MAX_BODY_BYTES
        "model": ("NOT_FOUND", "unknown model 'tulip'"),
        "version": ("NOT_FOUND", "version '19990101T000000000000Z' is not served"),
    }
    for case, (status, text) in expected.items():
        assert errors[case]["status"] == f"StatusCode.{status}", (case, errors[case])
        assert text in errors[case]["message"], (case, errors[case])


def observe_swap(client_python: Path, host: str, served: str, publish_newer: Callable[[], Lineage]) -> Lineage:
    """Publish a newer model while a Triton client infers in a loop; it sees the old then the new, and no failure."""
    client = start_client(client_python, "triton_scenario.py", host, "until-swap", "60")
    try:
        assert client.stdout is not None
        assert json.loads(client.stdout.readline()) == {"first": served}, client.stderr
        newer = publish_newer()
        out, errors = client.communicate(timeout=60)
    finally:
        client.kill()
    assert client.returncode == 0, errors
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["seen"] == [served, newer.version], seen
    assert seen["failures"] == 0
    assert seen["requests"] >= 21
    return newer


def test_a_hot_swap_is_seen_over_grpc_with_no_failed_request(
    ready_server: Service, served: Lineage, store, fitted_model, client_python: Path
) -> None:
    newer = observe_swap(client_python, ready_server.host, served.version, lambda: publish(store, fitted_model))
    assert newer.version > served.version


def test_in_the_pod_arrangement_a_notification_reaches_the_grpc_server_through_the_agent(
    common_env: dict[str, str],
    pubsub_emulator: Service,
    served: Lineage,
    store,
    fitted_model,
    client_python: Path,
    tmp_path: Path,
) -> None:
    """The model agent and the gRPC server as in a pod: one shared handover directory, events on, no polling."""
    handover = tmp_path / "handover"
    handover.mkdir()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), **common_env, "PUBSUB_EMULATOR_HOST": pubsub_emulator.host,
        "MODEL_EVENTS_ENABLED": "true", "RECONCILE_INTERVAL": "300", "HANDOVER_DIR": str(handover),
    }  # fmt: skip
    with (tmp_path / "agent.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "predictor.agent"], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    agent = Service("model-agent", "127.0.0.1:0", process, tmp_path / "agent.log")
    server = start_grpc_server(env, tmp_path / "grpc.log")
    try:
        wait_serving(server)
        observe_swap(client_python, server.host, served.version, lambda: publish(store, fitted_model))
        lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
        following = [line for line in lines if line["message"] == "following the model handover"]
        assert [(f["handover_dir"], f["own_agent"]) for f in following] == [(str(handover), False)]
    finally:
        server.stop()
        agent.stop()


def test_not_ready_until_a_model_loads_then_stops_cleanly_on_sigterm(grpc_server: Service, store, fitted_model) -> None:
    with grpc.insecure_channel(grpc_server.host) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest
        ask = lambda service: health.Check(request(service=service), timeout=40, wait_for_ready=True).status  # noqa: E731
        assert ask("") == health_pb2.HealthCheckResponse.SERVING  # live
        assert ask("inference.GRPCInferenceService") == health_pb2.HealthCheckResponse.NOT_SERVING
        publish(store, fitted_model)
        wait_serving(grpc_server)
    assert grpc_server.stop(timeout=15) == 0
    assert "gRPC V2 server stopped" in grpc_server.log_path.read_text()
