"""The V2 binary tensor data extension through the Flask test client: layout, errors and per-output choice."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flask.testing import FlaskClient

from core.iris import EXAMPLES
from predictor.http.binary import HEADER

ROWS = np.array([EXAMPLES["setosa"], EXAMPLES["virginica"]], dtype=np.float64)
INFER = "/v2/models/iris/infer"


def binary_request(request: dict[str, object], data: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(request).encode()
    return head + data, {HEADER: str(len(head))}


def tensor(size: int, datatype: str = "FP64") -> dict[str, object]:
    return {"name": "x", "shape": [2, 4], "datatype": datatype, "parameters": {"binary_data_size": size}}


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_binary_input_and_output(ready_client: FlaskClient, datatype: str) -> None:
    raw = ROWS.astype("<f4" if datatype == "FP32" else "<f8").tobytes()
    request = {
        "inputs": [tensor(len(raw), datatype)],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
    }
    body, headers = binary_request(request, raw)
    response = ready_client.post(INFER, data=body, headers=headers, content_type="application/octet-stream")
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/octet-stream"
    length = int(response.headers[HEADER])
    header = json.loads(response.data[:length])
    [output] = header["outputs"]
    assert "data" not in output
    assert output["parameters"] == {"binary_data_size": 16}
    assert np.frombuffer(response.data[length:], dtype="<i8").tolist() == [0, 2]


def test_binary_data_output_applies_to_outputs_that_do_not_choose(ready_client: FlaskClient) -> None:
    request = {
        "parameters": {"binary_data_output": True},
        "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": ROWS.tolist()}],
        "outputs": [{"name": "predict", "parameters": {"binary_data": False}}, {"name": "predict_proba"}],
    }
    response = ready_client.post(INFER, json=request)
    length = int(response.headers[HEADER])
    predict, proba = json.loads(response.data[:length])["outputs"]
    assert predict["data"] == [0, 2]
    assert proba["parameters"] == {"binary_data_size": 48}
    assert np.frombuffer(response.data[length:], dtype="<f8").reshape(2, 3).sum(axis=1) == pytest.approx([1, 1])


def test_a_json_only_request_gets_a_json_only_answer(ready_client: FlaskClient) -> None:
    request = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": ROWS.tolist()}]}
    response = ready_client.post(INFER, json=request)
    assert response.mimetype == "application/json"
    assert HEADER not in response.headers


@pytest.mark.parametrize(
    ("declared", "sent", "header", "field"),
    [
        (64, 63, None, "binary_data_size"),
        (63, 63, None, "binary_data_size"),
        (64, 64, "x1", HEADER),
        (64, 64, "99999", HEADER),
    ],
    ids=["short-data", "wrong-declared-size", "non-numeric-header", "header-past-the-body"],
)
def test_malformed_binary_requests_are_400(
    ready_client: FlaskClient, declared: int, sent: int, header: str | None, field: str
) -> None:
    body, headers = binary_request({"inputs": [tensor(declared)]}, ROWS.tobytes()[:sent])
    if header is not None:
        headers[HEADER] = header
    response = ready_client.post(INFER, data=body, headers=headers)
    assert response.status_code == 400
    assert field in response.get_json()["error"]


def test_binary_data_with_no_input_declaring_it_is_400(ready_client: FlaskClient) -> None:
    request = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": ROWS.tolist()}]}
    body, headers = binary_request(request, b"\0" * 8)
    response = ready_client.post(INFER, data=body, headers=headers)
    assert response.status_code == 400
    assert "binary_data_size" in response.get_json()["error"]


def test_binary_values_are_validated_like_json_ones(ready_client: FlaskClient) -> None:
    raw = np.array([[5.1, 3.5, 1.4, np.nan], [6.7, 3.1, 5.8, 2.2]]).tobytes()
    body, headers = binary_request({"inputs": [tensor(len(raw))]}, raw)
    response = ready_client.post(INFER, data=body, headers=headers)
    assert response.status_code == 400
    assert "petal_width" in response.get_json()["error"]
