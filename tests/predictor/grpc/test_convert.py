"""predictor.grpc.convert: protobuf requests into the V2 JSON form predictor.http.v2 validates, and answers back."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.errors import ServiceError
from predictor import infer_request
from predictor.grpc import convert
from predictor.protos import grpc_predict_v2_pb2 as pb

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 5.8, 2.2]]


def request(datatype: str = "FP64", raw: bytes | None = None, **kwargs: Any) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="iris", **kwargs)
    tensor = message.inputs.add(name="x", datatype=datatype, shape=[2, 4])
    if raw is None:
        getattr(tensor.contents, convert.CONTENTS[datatype]).extend(np.ravel(ROWS).tolist())
    else:
        message.raw_input_contents.append(raw)
    return message


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
@pytest.mark.parametrize("as_raw", [False, True], ids=["typed", "raw"])
def test_typed_and_raw_inputs_validate_to_the_same_rows(datatype: str, as_raw: bool) -> None:
    raw = np.array(ROWS, dtype="<f4" if datatype == "FP32" else "<f8").tobytes() if as_raw else None
    body, binary = convert.request_body(request(datatype, raw, id="r-1"))
    wanted, rows = infer_request.validate(body, 10, binary)
    assert list(wanted) == ["predict", "predict_proba"]
    assert np.allclose(rows, ROWS)
    assert body["id"] == "r-1"


def test_parameters_and_outputs_are_carried_over() -> None:
    message = request(parameters={"binary_data_output": pb.InferParameter(bool_param=True)})
    message.outputs.add(name="predict_proba").parameters["binary_data"].int64_param = 0
    body, _ = convert.request_body(message)
    assert body["parameters"] == {"binary_data_output": True}
    assert body["outputs"] == [{"name": "predict_proba", "parameters": {"binary_data": 0}}]


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (request(raw=b"\0" * 63), "raw_input_contents[0]: expected 64 bytes for [2, 4] FP64, got 63"),
        (request(raw_input_contents=[b"", b""]), "raw_input_contents: expected one entry per input (1), got 2"),
        (pb.ModelInferRequest(inputs=[{"name": "x", "datatype": "FP32", "shape": [1, 4]}]),
         "inputs[0].contents.fp32_contents: expected the FP32 values here"),
        (pb.ModelInferRequest(inputs=[{"name": "x", "datatype": "FP64", "shape": [1, 4],
                                       "contents": {"fp32_contents": [1, 2, 3, 4]}}]),
         "inputs[0].contents.fp64_contents"),
    ],
    ids=["raw-size", "raw-count", "no-contents", "contents-of-another-type"],
)  # fmt: skip
def test_malformed_requests_name_the_field(message: pb.ModelInferRequest, field: str) -> None:
    with pytest.raises(ServiceError) as caught:
        convert.request_body(message)
    assert caught.value.status == 400
    assert field in caught.value.message


def test_raw_with_typed_contents_is_refused() -> None:
    message = request("FP64")
    message.raw_input_contents.append(np.array(ROWS).tobytes())
    with pytest.raises(ServiceError, match=r"inputs\[0\].contents: not allowed with raw_input_contents"):
        convert.request_body(message)


@pytest.mark.parametrize(
    ("request_parameters", "output_parameters", "raw_inputs", "raw"),
    [
        ({}, {}, False, False),
        ({}, {}, True, True),
        ({"binary_data_output": True}, {}, False, True),
        ({"binary_data_output": False}, {}, True, False),
        ({"binary_data_output": True}, {"binary_data": False}, False, False),
        ({}, {"binary_data": True}, False, True),
    ],
)
def test_raw_outputs_when_asked_else_like_the_inputs(
    request_parameters: dict[str, Any], output_parameters: dict[str, Any], raw_inputs: bool, raw: bool
) -> None:
    assert convert.wants_raw({"parameters": request_parameters}, {"predict": output_parameters}, raw_inputs) is raw


@pytest.mark.parametrize("raw", [False, True])
def test_the_answer_carries_outputs_in_request_order(raw: bool) -> None:
    proba = [[0.9, 0.08, 0.02], [0.01, 0.1, 0.89]]
    wanted: dict[str, dict[str, Any]] = {"predict_proba": {}, "predict": {}}
    answer = convert.response({"id": "r-9"}, wanted, ("iris", "v1"), [0, 2], proba, raw)
    assert (answer.model_name, answer.model_version, answer.id) == ("iris", "v1", "r-9")
    assert [(o.name, o.datatype, list(o.shape)) for o in answer.outputs] == [
        ("predict_proba", "FP64", [2, 3]),
        ("predict", "INT64", [2]),
    ]
    if raw:
        assert np.frombuffer(answer.raw_output_contents[0], "<f8").tolist() == np.ravel(proba).tolist()
        assert np.frombuffer(answer.raw_output_contents[1], "<i8").tolist() == [0, 2]
        assert not answer.outputs[0].HasField("contents")
    else:
        assert list(answer.outputs[0].contents.fp64_contents) == np.ravel(proba).tolist()
        assert list(answer.outputs[1].contents.int64_contents) == [0, 2]
        assert not answer.raw_output_contents
