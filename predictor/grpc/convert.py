"""Between grpc_predict_v2.proto's protobuf messages and the JSON form of a V2 request that predictor.http.v2 checks.

Typed contents become the input's ``data`` (the field matching its datatype: ``fp32_contents`` or ``fp64_contents``);
``raw_input_contents`` becomes binary data of the declared size, as the REST binary extension sends it. Outputs go
back all as ``raw_output_contents`` when the request asks for binary data as a REST request would
(``binary_data_output`` on the request, ``binary_data`` on an output) or, unless it says otherwise, when its inputs
came raw (the Triton client sends raw inputs and reads only raw outputs); else as typed contents.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.iris import CLASSES, FEATURES
from predictor.errors import bad_field
from predictor.infer_request import DTYPES
from predictor.protos import grpc_predict_v2_pb2 as pb

CONTENTS = {"FP32": "fp32_contents", "FP64": "fp64_contents"}


def parameters(given: Any) -> dict[str, Any]:
    """A protobuf ``map<string, InferParameter>`` as a dict (an unset value is None, which validation refuses)."""
    values = {}
    for key, parameter in given.items():
        kind = parameter.WhichOneof("parameter_choice")
        values[key] = getattr(parameter, kind) if kind else None
    return values


def request_body(request: pb.ModelInferRequest) -> tuple[dict[str, Any], bytes]:
    """The request in the JSON form of a V2 REST request, and its binary data (raw input contents)."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise bad_field("raw_input_contents", f"expected one entry per input ({len(request.inputs)}), got {len(raw)}")
    body: dict[str, Any] = {"inputs": [_tensor(t, i, raw[i] if raw else None) for i, t in enumerate(request.inputs)]}
    if request.id:
        body["id"] = request.id
    if request.parameters:
        body["parameters"] = parameters(request.parameters)
    if request.outputs:
        body["outputs"] = [{"name": o.name, "parameters": parameters(o.parameters)} for o in request.outputs]
    return body, raw[0] if len(raw) == 1 else b""


def _tensor(tensor: pb.ModelInferRequest.InferInputTensor, index: int, raw: bytes | None) -> dict[str, Any]:
    where = f"inputs[{index}]"
    shape, datatype = list(tensor.shape), tensor.datatype
    given: dict[str, Any] = {"name": tensor.name, "shape": shape, "datatype": datatype}
    given["parameters"] = parameters(tensor.parameters)
    if raw is not None:
        if tensor.HasField("contents"):
            raise bad_field(f"{where}.contents", "not allowed with raw_input_contents")
        _check_raw_size(raw, shape, datatype, index)
        given["parameters"]["binary_data_size"] = len(raw)
        return given
    field = CONTENTS.get(datatype)
    if field is not None:
        values = list(getattr(tensor.contents, field))
        if not values:
            raise bad_field(f"{where}.contents.{field}", f"expected the {datatype} values here or raw_input_contents")
        given["data"] = values
    return given


def _check_raw_size(raw: bytes, shape: list[int], datatype: str, index: int) -> None:
    dtype = DTYPES.get(datatype)
    if dtype is None or len(shape) != 2 or shape[1] != len(FEATURES) or shape[0] < 1:
        return  # the shape or datatype is wrong: validation names that
    expected = shape[0] * shape[1] * dtype.itemsize
    if len(raw) != expected:
        raise bad_field(
            f"raw_input_contents[{index}]", f"expected {expected} bytes for {shape} {datatype}, got {len(raw)}"
        )


def wants_raw(body: dict[str, Any], wanted: dict[str, dict[str, Any]], raw_inputs: bool) -> bool:
    """Raw outputs when asked (``binary_data`` on an output, else ``binary_data_output`` on the request, as for REST),
    else when the inputs came raw; all outputs go one way, so one output asking is enough."""
    request_parameters = body.get("parameters", {})
    choices = [p.get("binary_data", request_parameters.get("binary_data_output")) for p in wanted.values()]
    asked = [choice is True for choice in choices if choice is not None]
    return any(asked) if asked else raw_inputs


def response(
    body: dict[str, Any],
    wanted: dict[str, dict[str, Any]],
    served: tuple[str, str],
    class_ids: list[int],
    proba: list[list[float]],
    raw: bool,
) -> pb.ModelInferResponse:
    """The answer: the wanted outputs in request order, as typed contents or all raw."""
    model_name, version = served
    count = len(class_ids)
    columns = {
        "predict": ("INT64", [count], "int64_contents", class_ids),
        "predict_proba": ("FP64", [count, len(CLASSES)], "fp64_contents", [p for row in proba for p in row]),
    }
    answer = pb.ModelInferResponse(model_name=model_name, model_version=version, id=body.get("id", ""))
    for name in wanted:
        datatype, shape, field, values = columns[name]
        output = answer.outputs.add(name=name, datatype=datatype, shape=shape)
        if raw:
            answer.raw_output_contents.append(np.asarray(values, dtype=DTYPES[datatype]).tobytes())
        else:
            getattr(output.contents, field).extend(values)
    return answer
