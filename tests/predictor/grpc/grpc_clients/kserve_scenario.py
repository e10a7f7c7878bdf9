"""KServe's Python client (``kserve.InferenceGRPCClient``) against a V2 gRPC server.

``python kserve_scenario.py HOST:PORT`` prints JSON: health, typed (list) and raw (NumPy) inputs, typed and raw
outputs, and an error. ``python kserve_scenario.py rest URL`` does the same over REST with
``kserve.InferenceRESTClient``. ``python kserve_scenario.py descriptor`` prints KServe's compiled grpc_predict_v2
descriptor.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from typing import Any

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.infer_type import RequestedOutput

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 5.8, 2.2]]


def outputs(response: Any) -> dict[str, Any]:
    return {o.name: o.as_numpy().tolist() for o in response.outputs}


def raw(response: Any) -> bool:
    """Whether the outputs came as raw_output_contents (the client keeps them as each output's raw data)."""
    return all(o._raw_data is not None for o in response.outputs)


def described(response: Any) -> dict[str, Any]:
    return {
        "id": response.id,
        "model_version": response.model_version,
        "outputs": outputs(response),
        "raw": raw(response),
    }


async def scenario(target: str) -> dict[str, Any]:
    async with InferenceGRPCClient(target, timeout=10) as client:
        out: dict[str, Any] = {
            "live": await client.is_server_live(), "ready": await client.is_server_ready(),
            "model_ready": await client.is_model_ready("iris"),
        }  # fmt: skip
        typed = InferInput("x", [2, 4], "FP64", data=[v for row in ROWS for v in row])
        out["typed"] = described(await client.infer(InferRequest("iris", [typed], request_id="k-1")))
        typed_asking_raw = InferRequest(
            "iris", [typed], request_id="k-2", parameters={"binary_data_output": True},
            request_outputs=[RequestedOutput("predict_proba")],
        )  # fmt: skip
        out["typed_asking_raw"] = described(await client.infer(typed_asking_raw))
        numpy_input = InferInput("x", [2, 4], "FP32")
        numpy_input.set_data_from_numpy(np.array(ROWS, dtype=np.float32))
        out["raw"] = described(await client.infer(InferRequest("iris", [numpy_input], request_id="k-3")))
        bad = InferInput("x", [1, 4], "FP64", data=[5.1, -3.5, 1.4, 0.2])
        try:
            await client.infer(InferRequest("iris", [bad]))
            out["error"] = {"code": "OK", "details": ""}
        except grpc.RpcError as e:
            out["error"] = {"code": e.code().name, "details": e.details()}
        return out


async def rest_scenario(base_url: str) -> dict[str, Any]:
    """The same client family over REST (``kserve.InferenceRESTClient``, protocol v2): JSON and binary tensors."""
    import httpx
    from kserve import InferenceRESTClient, RESTConfig

    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=10))
    out: dict[str, Any] = {
        "live": await client.is_server_live(base_url), "ready": await client.is_server_ready(base_url),
        "model_ready": await client.is_model_ready(base_url, "iris"),
    }  # fmt: skip
    typed = InferInput("x", [2, 4], "FP64", data=[v for row in ROWS for v in row])
    headers: dict[str, str] = {}  # this client's REST answer drops model_version: X-Model-Version carries it too
    request = InferRequest("iris", [typed], request_id="r-1")
    out["json"] = described(await client.infer(base_url, request, model_name="iris", response_headers=headers))
    out["json"]["model_version"] = headers.get("x-model-version")
    binary = InferInput("x", [2, 4], "FP32")
    binary.set_data_from_numpy(np.array(ROWS, dtype=np.float32), binary_data=True)
    request = InferRequest("iris", [binary], request_id="r-2", parameters={"binary_data_output": True})
    headers = {}
    out["binary"] = described(await client.infer(base_url, request, model_name="iris", response_headers=headers))
    out["binary"]["raw"] = "inference-header-content-length" in headers  # binary tensors in the answer
    bad = InferInput("x", [1, 4], "FP64", data=[5.1, -3.5, 1.4, 0.2])
    try:
        await client.infer(base_url, InferRequest("iris", [bad]), model_name="iris")
        out["error"] = {"status": 200, "body": ""}
    except httpx.HTTPStatusError as e:
        out["error"] = {"status": e.response.status_code, "body": e.response.text}
    await client.close()
    return out


def descriptor() -> dict[str, str]:
    from kserve.protocol.grpc import grpc_predict_v2_pb2

    return {"file_descriptor": base64.b64encode(grpc_predict_v2_pb2.DESCRIPTOR.serialized_pb).decode()}


if __name__ == "__main__":
    if sys.argv[1] == "descriptor":
        result = descriptor()
    elif sys.argv[1] == "rest":
        result = asyncio.run(rest_scenario(sys.argv[2]))
    else:
        result = asyncio.run(scenario(sys.argv[1]))
    print(json.dumps(result))
