"""KServe's own Python client (``kserve.InferenceGRPCClient``) against ``python -m predictor.grpc``, and the vendored
grpc_predict_v2.proto checked against the descriptor compiled into that client."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2

from core.lineage import Lineage
from devstack.emulators import Service
from predictor.protos import grpc_predict_v2_pb2
from tests.predictor.conftest import publish
from tests.predictor.grpc_fixtures import client_python, grpc_env, grpc_server, run_client, wait_serving

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
