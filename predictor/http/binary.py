"""The V2 binary tensor data extension: a JSON header of Inference-Header-Content-Length bytes, then raw tensors.

An input whose ``parameters.binary_data_size`` is set has no ``data``: its values are the next that many bytes of the
body (little-endian, row-major). An output is sent as raw bytes when its own ``parameters.binary_data`` says so, or
else when the request's ``parameters.binary_data_output`` does; its JSON then carries ``binary_data_size`` instead.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from predictor.errors import bad_field
from predictor.infer_request import DTYPES

HEADER = "Inference-Header-Content-Length"


def split(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON part and the binary part of a request body."""
    if header_length is None:
        return raw, b""
    if not header_length.isascii() or not header_length.isdigit() or int(header_length) > len(raw):
        raise bad_field(HEADER, f"expected a byte count of at most the body's {len(raw)} bytes")
    return raw[: int(header_length)], raw[int(header_length) :]


def wants_binary(request_parameters: dict[str, Any], output_parameters: dict[str, Any]) -> bool:
    choice = output_parameters.get("binary_data", request_parameters.get("binary_data_output", False))
    return choice is True


def encode(answer: dict[str, Any], binary_outputs: set[str]) -> tuple[bytes, int]:
    """The response body (JSON header, then the named outputs' raw bytes) and the JSON header's length."""
    chunks = []
    for tensor in answer["outputs"]:
        if tensor["name"] in binary_outputs:
            data = np.asarray(tensor.pop("data"), dtype=DTYPES[tensor["datatype"]]).tobytes()
            tensor["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
    header = json.dumps(answer).encode()
    return header + b"".join(chunks), len(header)
