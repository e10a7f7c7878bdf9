"""An Open Inference Protocol V2 inference request, checked: the REST route (predictor.http.v2) and the gRPC service
(predictor.grpc, its protobuf translated to the JSON form) both validate through this; no Flask here.

One input tensor of shape [N, 4] (FEATURES order), datatype FP32 or FP64, ``data`` flat (row-major) or nested, or
binary data of the declared size (REST's binary extension, predictor.http.binary, or gRPC's raw contents); every
failure is a 400 naming the field. Transport-neutral, beside the data plane: it imports neither Flask nor a transport.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pydantic_core

from core.iris import FEATURES, check_measurement
from predictor.errors import BadRequest, bad_field
from predictor.http import inputs
from predictor.http.contract import OUTPUTS, Contract, InferRequest, InputTensor

DTYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"), "INT64": np.dtype("<i8")}
"""The byte layout of each V2 datatype sent as binary data (little-endian), over REST and gRPC alike."""
SHAPE = f"expected [N, {len(FEATURES)}]"
REASONS: dict[inputs.Site, str] = {
    (): "expected an inference request object",
    ("id",): "expected a string",
    ("parameters",): "expected an object",
    ("outputs",): "expected a non-empty list of {{'name': ...}}",
    ("outputs", "*"): "expected {{'name': ...}}",
    ("outputs", "*", "name"): f"expected one of {', '.join(OUTPUTS)}",
    ("outputs", "*", "parameters"): "expected an object",
    ("inputs",): "expected exactly one input tensor object",
    ("inputs", "*"): "expected exactly one input tensor object",
    ("inputs", "*", "name"): "expected a string",
    ("inputs", "*", "parameters"): "expected an object",
    ("inputs", "*", "datatype"): "expected FP32 or FP64",
    ("inputs", "*", "shape"): SHAPE,
    ("inputs", "*", "shape", "*"): SHAPE,
    ("inputs", "*", "data"): "expected a list of numbers",
}
"""What a V2 client is told when the model refuses a body, by location (format strings: `{{` is a brace)."""


def validate(body: Any, limit: int, binary_data: bytes = b"") -> tuple[dict[str, dict[str, Any]], inputs.Rows]:
    """An inference request in its JSON form -> (requested outputs and their parameters, validated rows).

    The gRPC server (predictor.grpc) validates its requests through this, translated to the JSON form.
    """
    _, wanted, rows = checked(body, limit, binary_data)
    return wanted, rows


def checked(body: bytes | Any, limit: int, binary_data: bytes) -> tuple[InferRequest, dict[str, Any], inputs.Rows]:
    """The request checked by the contract's model (from JSON bytes, or already parsed), its outputs and rows."""
    try:
        checked = inputs.validate(Contract.build(limit).infer, body, REASONS, max_batch_size=limit)
    except BadRequest as e:
        field = str(e.details.get("field", ""))
        if field == "inputs[0].data" or field.startswith("inputs[0].data["):
            _check_layout(body, limit)  # the data's layout is named before its values, as this route always did
        raise
    wanted: dict[str, Any] = {output["name"]: output.get("parameters", {}) for output in checked.get("outputs", ())}
    return checked, wanted or {name: {} for name in OUTPUTS}, _rows(checked["inputs"][0], binary_data)


def _check_layout(body: bytes | Any, limit: int) -> None:
    """A 400 if the (refused) request's tensor has a valid shape but a count of rows or numbers that disagrees."""
    with contextlib.suppress(ValueError, LookupError, TypeError, AttributeError):
        tensor = (pydantic_core.from_json(body) if isinstance(body, bytes) else body)["inputs"][0]
        shape, data = tensor["shape"], tensor["data"]
        if [type(n) for n in shape] == [int, int] and shape[1] == len(FEATURES) and 1 <= shape[0] <= limit and data:
            _counts(data, shape[0])


def _rows(tensor: InputTensor, binary_data: bytes) -> inputs.Rows:
    """The rows of the one input tensor: its data (or binary data) checked against its shape."""
    in_binary = "binary_data_size" in tensor.get("parameters", {})
    if not in_binary and "data" not in tensor:
        raise bad_field("inputs[0].data", "missing field")
    count = tensor["shape"][0]
    if in_binary:
        values = binary_values(tensor, binary_data, count)
        for index, value in enumerate(values):
            problem = check_measurement(value)
            if problem:
                row, feature = divmod(index, len(FEATURES))
                raise bad_field(f"inputs[0].data[{row}].{FEATURES[feature]}", problem)
        return _data(values, count)
    if binary_data:
        raise bad_field("inputs[0].parameters.binary_data_size", "binary data sent but no input declares its size")
    return _data(tensor["data"], count)


def binary_values(tensor: Mapping[str, Any], binary: bytes, count: int) -> list[Any]:
    """The flat values of an input sent as binary data (it must be exactly count x 4 values of its datatype)."""
    size = tensor["parameters"]["binary_data_size"]
    dtype = DTYPES[tensor["datatype"]]
    expected = count * 4 * dtype.itemsize
    if type(size) is not int or size != expected or len(binary) != expected:
        raise bad_field("inputs[0].parameters.binary_data_size", f"expected {expected} bytes, got {len(binary)}")
    values: list[Any] = np.frombuffer(binary, dtype=dtype).astype(np.float64).tolist()
    return values


def _counts(data: list[Any], count: int) -> None:
    """As many rows as the shape says (when the first item is a row), else as many numbers."""
    width = len(FEATURES)
    if type(data[0]) is list and len(data) != count:
        raise bad_field("inputs[0].data", f"expected {count} rows to match the shape, got {len(data)}")
    if type(data[0]) is not list and len(data) != count * width:
        raise bad_field("inputs[0].data", f"expected {count * width} numbers to match the shape, got {len(data)}")


def _data(data: list[Any], count: int) -> inputs.Rows:
    """N rows of 4 values, or N*4 values row-major (the values are already validated measurements)."""
    width = len(FEATURES)
    _counts(data, count)
    if type(data[0]) is list:
        for index, row in enumerate(data):
            if type(row) is not list:
                raise bad_field(f"inputs[0].data[{index}]", f"expected a row of {width} numbers")
        return data
    for index, value in enumerate(data):
        if type(value) is list:
            row, feature = divmod(index, width)
            raise bad_field(f"inputs[0].data[{row}].{FEATURES[feature]}", "expected a number, got array")
    return [data[i * width : (i + 1) * width] for i in range(count)]
