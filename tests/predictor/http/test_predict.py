"""POST /predict and POST /api: answers, and every bad-input rule (400/413/415/503, never a 500)."""

from __future__ import annotations

import io
import json
import math

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.iris import CLASSES, EXAMPLES, FEATURES, MAX_CM
from tests.predictor.conftest import MAX_BATCH, VERSION

SETOSA, VIRGINICA = list(EXAMPLES["setosa"]), list(EXAMPLES["virginica"])


def v2_body(rows: list[list[float]]) -> dict[str, object]:
    return {"inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]}


def named(values: list) -> dict[str, object]:
    return dict(zip(FEATURES, values, strict=True))


def test_predict_names_species_with_probabilities(ready_client: FlaskClient) -> None:
    response = ready_client.post("/predict", json={"instances": [named(SETOSA), VIRGINICA]})
    assert response.status_code == 200
    assert response.headers["X-Model-Version"] == VERSION
    body = response.get_json()
    assert body["model_version"] == VERSION
    assert [p["species"] for p in body["predictions"]] == ["setosa", "virginica"]
    for prediction in body["predictions"]:
        assert CLASSES[prediction["class_id"]] == prediction["species"]
        assert list(prediction["probabilities"]) == list(CLASSES)
        assert math.isclose(sum(prediction["probabilities"].values()), 1.0)
        assert max(prediction["probabilities"], key=prediction["probabilities"].get) == prediction["species"]


def test_api_keeps_the_seed_contract(ready_client: FlaskClient) -> None:
    single = ready_client.post("/api", json=SETOSA)
    assert (single.status_code, single.data, single.mimetype) == (200, b'"[0]"', "application/json")
    assert json.loads(single.data) == "[0]"
    batch = ready_client.post("/api", json=[SETOSA, VIRGINICA, list(EXAMPLES["versicolor"])])
    assert batch.get_json() == "[0, 2, 1]"
    assert batch.headers["X-Model-Version"] == VERSION


def test_integers_are_measurements(ready_client: FlaskClient) -> None:
    assert ready_client.post("/api", json=[5, 3, 1, 0]).get_json() == "[0]"


@pytest.mark.parametrize("route", ["/predict", "/api", "/v2/models/iris/infer"])
def test_no_model_is_503(client: FlaskClient, route: str) -> None:
    bodies = {
        "/predict": {"instances": [SETOSA]},
        "/api": SETOSA,
        "/v2/models/iris/infer": {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": SETOSA}]},
    }
    response = client.post(route, json=bodies[route])
    assert response.status_code == 503
    assert response.headers["X-Model-Version"] == "none"
    assert "no verified model" in json.dumps(response.get_json())


def bad(values: dict[int, object]) -> list[object]:
    row: list[object] = list(SETOSA)
    for index, value in values.items():
        row[index] = value
    return row


PREDICT_CASES = [
    ({"instances": [SETOSA, SETOSA, SETOSA, named(bad({3: -0.1}))]}, "instances[3].petal_width"),
    ({"instances": [named(bad({0: True}))]}, "instances[0].sepal_length"),
    ({"instances": [bad({1: "3.5"})]}, "instances[0].sepal_width"),
    ({"instances": [bad({2: None})]}, "instances[0].petal_length"),
    ({"instances": [bad({2: MAX_CM + 0.5})]}, "instances[0].petal_length"),
    ({"instances": [bad({2: 10**400})]}, "instances[0].petal_length"),
    ({"instances": [bad({0: [1.0]})]}, "instances[0].sepal_length"),
    ({"instances": [{k: v for k, v in named(SETOSA).items() if k != "sepal_width"}]}, "instances[0].sepal_width"),
    ({"instances": [{**named(SETOSA), "colour": 1}]}, "instances[0].colour"),
    ({"instances": [SETOSA[:3]]}, "instances[0]"),
    ({"instances": [[*SETOSA, 1.0]]}, "instances[0]"),
    ({"instances": ["5.1,3.5,1.4,0.2"]}, "instances[0]"),
    ({"instances": []}, "instances"),
    ({"instances": [SETOSA] * (MAX_BATCH + 1)}, "instances"),
    ({"instances": named(SETOSA)}, "instances"),
    ({"instance": [SETOSA]}, "instances"),
    ({"instances": [SETOSA], "extra": 1}, "extra"),
    ([SETOSA], "body"),
]


@pytest.mark.parametrize(("body", "field"), PREDICT_CASES)
def test_predict_rejects_bad_input_naming_the_field(ready_client: FlaskClient, body: object, field: str) -> None:
    response = ready_client.post("/predict", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["code"], error["details"]["field"]) == ("bad_request", field)
    assert error["message"].startswith(field)


API_CASES = [
    (bad({3: float("-0.5")}), "body.petal_width"),
    ([SETOSA, bad({0: False})], "body[1].sepal_length"),
    ([SETOSA, named(SETOSA)], "body[1]"),
    ([SETOSA[:2]], "body[0]"),
    ([], "body"),
    ({"instances": [SETOSA]}, "body"),
    ([SETOSA] * (MAX_BATCH + 1), "body"),
    ("5.1,3.5,1.4,0.2", "body"),
]


@pytest.mark.parametrize(("body", "field"), API_CASES)
def test_api_rejects_bad_input_naming_the_field(ready_client: FlaskClient, body: object, field: str) -> None:
    response = ready_client.post("/api", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["details"]["field"] == field


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"[5.1, 3.5, 1.4, NaN]", b"[5.1, 3.5, 1.4, Infinity]", b"[5.1, 3.5, 1.4, -Infinity]", b"\xff\xfe\x00",
     b"[" * 2000 + b"]" * 2000],
    ids=["empty", "truncated", "nan", "infinity", "minus-infinity", "not-utf8", "too-deep"],
)  # fmt: skip
def test_malformed_json_is_400(ready_client: FlaskClient, raw: bytes) -> None:
    response = ready_client.post("/api", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["details"] == {"field": "body", "reason": "malformed JSON"}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
@pytest.mark.parametrize("route", ["/predict", "/v2/models/iris/infer"])
def test_declared_non_json_content_type_is_415(ready_client: FlaskClient, route: str, content_type: str) -> None:
    body = {"instances": [SETOSA]} if route == "/predict" else v2_body([SETOSA])
    response = ready_client.post(route, data=json.dumps(body), content_type=content_type)
    assert response.status_code == 415
    error = response.get_json()["error"]
    assert error["code"] == "unsupported_media_type" if route == "/predict" else "Content-Type" in error


@pytest.mark.parametrize("route", ["/predict", "/v2/models/iris/infer", "/api"])
def test_a_body_with_no_content_type_is_read_as_json(ready_client: FlaskClient, route: str) -> None:
    body = {"/predict": {"instances": [SETOSA]}, "/api": SETOSA}.get(route) or v2_body([SETOSA])
    response = ready_client.post(route, data=json.dumps(body))
    assert response.request.headers.get("Content-Type") is None
    assert response.status_code == 200, response.get_json()
    assert response.get_data(as_text=True).count("setosa") + response.get_data(as_text=True).count("[0]") >= 1


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_api_reads_the_seed_clients_body_whatever_its_content_type(
    ready_client: FlaskClient, content_type: str | None
) -> None:
    response = ready_client.post("/api", data=json.dumps(SETOSA), content_type=content_type)
    assert response.status_code == 200
    assert response.get_json() == "[0]"


def test_json_suffix_media_type_is_accepted(ready_client: FlaskClient) -> None:
    response = ready_client.post(
        "/api", data=json.dumps(SETOSA), content_type="application/vnd.iris+json; charset=utf-8"
    )
    assert response.status_code == 200


def test_body_over_the_limit_is_413(ready_client: FlaskClient) -> None:
    response = ready_client.post("/api", data=b"[" + b" " * 5000 + b"]", content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


def test_chunked_body_over_the_limit_is_413(ready_client: FlaskClient) -> None:
    """No Content-Length (chunked transfer): the server says the stream is terminated and counts bytes itself."""
    response = ready_client.post(
        "/api",
        input_stream=io.BytesIO(b"[" + b" " * 5000 + b"]"),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
        headers={"Transfer-Encoding": "chunked"},
    )
    assert response.status_code == 413


def test_chunked_body_under_the_limit_is_read(ready_client: FlaskClient) -> None:
    response = ready_client.post(
        "/api",
        input_stream=io.BytesIO(json.dumps(SETOSA).encode()),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
        headers={"Transfer-Encoding": "chunked"},
    )
    assert response.get_json() == "[0]"


def containers(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.lists(children, max_size=6) | st.dictionaries(st.sampled_from([*FEATURES, "x"]), children)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    containers,
    max_leaves=30,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values, route=st.sampled_from(["/predict", "/api", "/v2/models/iris/infer"]))
def test_any_json_gets_200_or_a_400_naming_a_field(ready_client: FlaskClient, body: object, route: str) -> None:
    response = ready_client.post(route, data=json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 400), response.data
    payload = response.get_json()
    if response.status_code == 400 and route != "/v2/models/iris/infer":
        assert payload["error"]["details"]["field"]


measurement = st.floats(min_value=0, max_value=MAX_CM) | st.integers(min_value=0, max_value=100)
instance = st.lists(measurement, min_size=4, max_size=4) | st.fixed_dictionaries({f: measurement for f in FEATURES})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(instances=st.lists(instance, min_size=1, max_size=MAX_BATCH))
def test_every_valid_batch_is_answered(ready_client: FlaskClient, instances: list[object]) -> None:
    response = ready_client.post("/predict", json={"instances": instances})
    assert response.status_code == 200
    assert len(response.get_json()["predictions"]) == len(instances)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.one_of(
        st.floats(max_value=-1e-9, allow_infinity=False),
        st.floats(min_value=MAX_CM, exclude_min=True, allow_infinity=False),
        st.booleans(),
    )
)
def test_out_of_range_values_are_400(ready_client: FlaskClient, value: float) -> None:
    response = ready_client.post("/predict", json={"instances": [bad({1: value})]})
    assert response.status_code == 400
    assert response.get_json()["error"]["details"]["field"] == "instances[0].sepal_width"
