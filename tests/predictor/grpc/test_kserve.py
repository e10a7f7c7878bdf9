"""KServe's own Python client against ``python -m predictor.grpc`` (``InferenceGRPCClient``) and ``python -m
predictor`` (``InferenceRESTClient``), and the vendored grpc_predict_v2.proto checked against the descriptor compiled
into that client."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from google.protobuf import descriptor_pb2

from core.lineage import Lineage
from devstack.emulators import Service, free_port
from predictor.protos import grpc_predict_v2_pb2
from tests.polling import wait_for
from tests.predictor.conftest import publish
from tests.predictor.grpc.grpc_fixtures import REPO, client_python, grpc_env, grpc_server, run_client, wait_serving

pytestmark = pytest.mark.integration
__all__ = ["client_python", "grpc_env", "grpc_server"]  # fixtures


def test_the_kserve_grpc_client(store, fitted_model, grpc_server: Service, client_python: Path) -> None:
    served: Lineage = publish(store, fitted_model)
    wait_serving(grpc_server)
    out = run_client(client_python, "kserve_scenario.py", grpc_server.host)
    assert (out["live"], out["ready"], out["model_ready"]) == (True, True, True)
    typed = out["typed"]
    assert (typed["id"], typed["model_version"], typed["raw"]) == ("k-1", served.version, False)
    assert typed["outputs"]["predict"] == [0, 2]
    assert [sum(row) for row in typed["outputs"]["predict_proba"]] == pytest.approx([1.0, 1.0])
    asking = out["typed_asking_raw"]
    assert (asking["id"], asking["raw"], list(asking["outputs"])) == ("k-2", True, ["predict_proba"])
    assert asking["outputs"]["predict_proba"] == typed["outputs"]["predict_proba"]
    raw = out["raw"]
    assert (raw["id"], raw["raw"], raw["outputs"]["predict"]) == ("k-3", True, [0, 2])
    assert out["error"]["code"] == "INVALID_ARGUMENT"
    assert "inputs[0].data[0].sepal_width" in out["error"]["details"]


def test_the_kserve_rest_client(store, fitted_model, grpc_env: dict[str, str], tmp_path: Path,
                                client_python: Path) -> None:  # fmt: skip
    served: Lineage = publish(store, fitted_model)
    port = free_port()
    env = grpc_env | {"PORT": str(port), "WEB_CONCURRENCY": "1"}
    with (tmp_path / "predictor.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "predictor"], cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Service("predictor", f"127.0.0.1:{port}", process, tmp_path / "predictor.log")
    try:
        wait_for(lambda: _status(f"{server.url}/v2/health/ready") == 200, 60, "the REST predictor to be ready")
        out = run_client(client_python, "kserve_scenario.py", "rest", server.url)
    finally:
        server.stop()
    assert (out["live"], out["ready"], out["model_ready"]) == (True, True, True)
    assert (out["json"]["id"], out["json"]["model_version"]) == ("r-1", served.version)
    assert out["json"]["outputs"]["predict"] == [0, 2]
    assert (out["binary"]["id"], out["binary"]["raw"], out["binary"]["outputs"]["predict"]) == ("r-2", True, [0, 2])
    fp32, fp64 = ([p for row in out[k]["outputs"]["predict_proba"] for p in row] for k in ("binary", "json"))
    assert fp32 == pytest.approx(fp64, abs=1e-6)  # FP32 inputs against FP64 ones
    assert out["error"]["status"] == 400
    assert "sepal_width" in out["error"]["body"]


def _status(url: str) -> int:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return 0


def _shape(file: descriptor_pb2.FileDescriptorProto) -> dict[str, Any]:
    """What the wire and the generated code depend on: package, messages with their fields, services, methods."""

    def message(m: descriptor_pb2.DescriptorProto, prefix: str) -> dict[str, Any]:
        found = {f"{prefix}{m.name}": sorted((f.name, f.number, f.type, f.label, f.type_name) for f in m.field)}
        for nested in m.nested_type:
            found |= message(nested, f"{prefix}{m.name}.")
        return found

    messages: dict[str, Any] = {}
    for m in file.message_type:
        messages |= message(m, "")
    services = {
        s.name: sorted((m.name, m.input_type, m.output_type, m.client_streaming, m.server_streaming) for m in s.method)
        for s in file.service
    }
    return {"package": file.package, "syntax": file.syntax, "messages": messages, "services": services}


def test_the_vendored_proto_is_kserves_interface(client_python: Path) -> None:
    theirs = descriptor_pb2.FileDescriptorProto.FromString(
        base64.b64decode(run_client(client_python, "kserve_scenario.py", "descriptor")["file_descriptor"])
    )
    ours = descriptor_pb2.FileDescriptorProto.FromString(grpc_predict_v2_pb2.DESCRIPTOR.serialized_pb)
    assert _shape(ours) == _shape(theirs)
    assert len(_shape(ours)["messages"]) >= 20
