"""predictor.http.contract and inputs.validate: the models validate the bodies, name the field, and are the document."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from flask.testing import FlaskClient

from core.iris import CLASSES, FEATURES
from predictor import infer_request
from predictor.errors import BadRequest
from predictor.http import inputs, responses
from predictor.http.contract import Contract, InstanceObject
from predictor.http.openapi import document
from predictor.http.predict import PREDICT
from predictor.settings import PredictorSettings

LIMIT = 5
SETOSA = [5.1, 3.5, 1.4, 0.2]
contract = Contract.build(LIMIT)


def refusal(adapter: Any, body: Any, sites: Any = None) -> tuple[str, str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(BadRequest) as caught:
        inputs.validate(adapter, raw, sites)
    details = caught.value.details
    assert isinstance(details, dict)
    assert caught.value.message == f"{details['field']}: {details['reason']}" or details["field"] == "body"
    return details["field"], details["reason"]


def test_the_models_name_exactly_the_features_and_classes_in_order() -> None:
    assert tuple(InstanceObject.__annotations__) == FEATURES
    assert get_args(responses.Species) == CLASSES
    assert tuple(responses.Probabilities.__annotations__) == CLASSES


def test_valid_bodies_become_rows_in_feature_order() -> None:
    named = dict(zip(reversed(FEATURES), reversed(SETOSA), strict=True))
    body = inputs.validate(contract.predict, json.dumps({"instances": [named, [5, 3, 1, 0]]}).encode())
    assert [list(row) for row in inputs.rows(body["instances"])] == [SETOSA, [5.0, 3.0, 1.0, 0.0]]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"instances": [SETOSA, {"sepal_length": -1, "colour": 1}]}, ("instances[1].sepal_width", "missing feature")),
        ({"instances": [SETOSA, {**dict(zip(FEATURES, SETOSA, strict=True)), "colour": 1, "petal_width": -1}]},
         ("instances[1].colour", "unknown feature")),
        ({"instances": [[1, 2, "x", -1], [1, 2]]}, ("instances[0].petal_length", "expected a number, got string")),
        ({"instances": [[1, 2, 3, 101]]}, ("instances[0].petal_width", "larger than 100 cm")),
        ({"instances": [[1, 2, 3, 4]] * (LIMIT + 1)}, ("instances", f"batch of {LIMIT + 1} exceeds MAX_BATCH_SIZE 5")),
        ({"instances": [[1, 2]], "extra": 1}, ("extra", "unknown field")),
        ({"instances": [True]}, ("instances[0]", "expected an object of features or a list of 4 numbers, got boolean")),
        ({"instance": []}, ("instances", "missing field")),
        ([SETOSA], ("body", "expected an object with 'instances', got array")),
    ],
)  # fmt: skip
def test_the_first_problem_in_reading_order_is_named(body: Any, expected: tuple[str, str]) -> None:
    assert refusal(contract.predict, body, PREDICT) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([1, 2, 3, True], ("body.petal_width", "expected a number, got boolean")),
        ([1, 2], ("body", "expected 4 measurements, got 2")),
        (b"[[1, 2, 3, 4], [1, 2, 3, 1e400]]", ("body[1].petal_width", "not a finite number")),
        ([SETOSA, {"a": 1}], ("body[1]", "expected a list of 4 numbers, got object")),
        ({"x": 1}, ("body", "expected a list of 4 numbers or a list of such lists")),
    ],
)
def test_api_bodies_name_the_field(body: Any, expected: tuple[str, str]) -> None:
    assert refusal(contract.api, body) == expected


@pytest.mark.parametrize("raw", [b'{"instances": [[1, 2, 3, NaN]]}', b'{"instances": [[1, 2]], "x": Infinity}'])
def test_nan_and_infinity_are_malformed_json_wherever_they_are(raw: bytes) -> None:
    assert refusal(contract.predict, raw) == ("body", "malformed JSON")


def tensor(data: list[Any], **more: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": data, **more}]}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (tensor([*SETOSA, 1, 2, "x", 4]), ("inputs[0].data[1].petal_length", "expected a number, got string")),
        (tensor([SETOSA, [1, 2, 3, -4]]), ("inputs[0].data[1].petal_width", "negative measurement")),
        (tensor(SETOSA, parameters={"binary_data_size": [1]}),
         ("inputs[0].parameters.binary_data_size", "expected a string, number or boolean")),
        (tensor(SETOSA, datatype="FP16"), ("inputs[0].datatype", "expected FP32 or FP64")),
        ({"inputs": [], "id": 1}, ("id", "expected a string")),
    ],
)  # fmt: skip
def test_v2_bodies_name_the_field(body: Any, expected: tuple[str, str]) -> None:
    assert refusal(contract.infer, body, infer_request.REASONS) == expected


def test_the_document_carries_the_models_schemas(offline_settings: PredictorSettings) -> None:
    found = document(offline_settings.model_copy(update={"max_batch_size": LIMIT}))["components"]["schemas"]
    assert found["PredictRequest"]["properties"]["instances"]["maxItems"] == LIMIT
    assert found["InstanceObject"]["required"] == list(FEATURES)
    assert found["InstanceObject"]["additionalProperties"] is False
    assert found["InputTensor"]["properties"]["datatype"]["enum"] == ["FP32", "FP64"]
    assert found["ApiRequest"]["oneOf"][1]["maxItems"] == LIMIT
    assert found["SwapRecord"]["properties"]["version"] == {"type": "string", "nullable": True, "title": "Version"}
    assert found["AdminResult"]["properties"]["record"] == {"allOf": [{"$ref": "#/components/schemas/SwapRecord"}],
                                                             "nullable": True}  # fmt: skip


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([[1, 2, 3, -4]], "expected 2 rows to match the shape, got 1"),
        ([1, 2, 3, -4], "expected 8 numbers to match the shape, got 4"),
    ],
)
def test_v2_names_a_count_that_disagrees_with_the_shape_before_any_value(data: list[Any], reason: str) -> None:
    with pytest.raises(BadRequest) as caught:
        infer_request.validate(tensor(data), LIMIT)
    assert caught.value.details == {"field": "inputs[0].data", "reason": reason}


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"version": "latest"}, "version", "not a model version like 20261127T093817123456Z"),
        ({"version": 3}, "version", "not a model version like 20261127T093817123456Z"),
        ({}, "body", "wrong shape"),
        ({"version": "20261127T093817123456Z", "x": 1}, "body", "wrong shape"),
        ([], "body", "wrong shape"),
    ],
)
def test_a_pin_names_the_version_or_says_the_shape_is_wrong(
    client: FlaskClient, admin_headers: dict[str, str], body: Any, field: str, reason: str
) -> None:
    error = client.put("/admin/pin", json=body, headers=admin_headers).get_json()["error"]
    assert error["details"] == {"field": field, "reason": reason}
