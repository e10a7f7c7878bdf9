"""tritonclient[grpc] against a V2 gRPC server: ``python triton_scenario.py HOST:PORT FP32|FP64`` prints JSON.

tritonclient sends its inputs as raw_input_contents and reads numeric outputs only from raw_output_contents.
``python triton_scenario.py HOST:PORT until-swap SECONDS`` infers until the answering model version changes.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 5.8, 2.2]]


def error(call: Any) -> dict[str, str]:
    try:
        call()
    except InferenceServerException as e:
        return {"status": str(e.status()), "message": str(e.message())}
    return {"status": "OK", "message": ""}


def infer(client: triton.InferenceServerClient, rows: Any, datatype: str, **kwargs: Any) -> triton.InferResult:
    array = np.array(rows, dtype=np.float32 if datatype == "FP32" else np.float64)
    x = triton.InferInput("x", list(array.shape), datatype)
    x.set_data_from_numpy(array)
    return client.infer("iris", [x], **kwargs)


def main(target: str, datatype: str) -> dict[str, Any]:
    client = triton.InferenceServerClient(target)
    out: dict[str, Any] = {
        "live": client.is_server_live(), "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready("iris"),
        "metadata": client.get_model_metadata("iris", as_json=True),
        "server_metadata": client.get_server_metadata(as_json=True),
    }  # fmt: skip
    wanted = [triton.InferRequestedOutput("predict")]
    one = infer(client, ROWS, datatype, outputs=wanted, request_id="t-1")
    response = one.get_response(as_json=True)
    out["one"] = {
        "id": response.get("id"), "model_version": response.get("model_version"),
        "outputs": [o["name"] for o in response["outputs"]], "raw": bool(response.get("raw_output_contents")),
        "predict": one.as_numpy("predict").tolist(),
    }  # fmt: skip
    every = infer(client, ROWS, datatype)
    out["every"] = {
        "outputs": [o["name"] for o in every.get_response(as_json=True)["outputs"]],
        "predict": every.as_numpy("predict").tolist(), "proba": every.as_numpy("predict_proba").tolist(),
    }  # fmt: skip
    out["errors"] = {
        "nan": error(lambda: infer(client, [[5.1, 3.5, 1.4, float("nan")]], "FP64")),
        "shape": error(lambda: infer(client, [[5.1, 3.5, 1.4]], "FP64")),
        "datatype": error(lambda: client.infer("iris", [triton.InferInput("x", [1, 4], "INT64").set_data_from_numpy(
            np.array([[5, 3, 1, 0]], dtype=np.int64))])),
        "batch": error(lambda: infer(client, ROWS * 600, "FP32")),
        "too_large": error(lambda: infer(client, ROWS * 2000, "FP64")),
        "model": error(lambda: client.get_model_metadata("tulip")),
        "version": error(lambda: infer(client, ROWS, "FP32", model_version="19990101T000000000000Z")),
    }  # fmt: skip
    client.close()
    return out


def until_swap(target: str, seconds: float, after: int = 20) -> dict[str, Any]:
    """Infer over and over until the answering version changes, then ``after`` more times: every version seen, in
    order, and the failed requests. Prints the first answering version as soon as it has it."""
    client = triton.InferenceServerClient(target)
    seen: list[str] = []
    failures, requests, remaining, deadline = 0, 0, after, time.monotonic() + seconds
    while time.monotonic() < deadline and remaining > 0:
        requests += 1
        try:
            answered = infer(client, ROWS, "FP32").get_response().model_version
        except InferenceServerException:
            failures += 1
            continue
        if not seen:
            print(json.dumps({"first": answered}), flush=True)
        if not seen or seen[-1] != answered:
            seen.append(answered)
        remaining -= len(seen) > 1
    client.close()
    return {"seen": seen, "failures": failures, "requests": requests}


if __name__ == "__main__":
    if sys.argv[2] == "until-swap":
        print(json.dumps(until_swap(sys.argv[1], float(sys.argv[3]))))
    else:
        print(json.dumps(main(sys.argv[1], sys.argv[2])))
