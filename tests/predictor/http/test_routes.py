"""V2 protocol, health, /v1/model, /metrics, admin auth and the JSON error shape of every failure."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.pipeline import Pipeline

from core.iris import EXAMPLES
from predictor.http.app import create_app
from predictor.settings import PredictorSettings
from tests.predictor.conftest import ADMIN_TOKEN, MAX_BATCH, VERSION, Admin, install, publish

SETOSA, VIRGINICA = list(EXAMPLES["setosa"]), list(EXAMPLES["virginica"])


def tensor(data: list, shape: list, datatype: str = "FP64") -> dict:
    return {"inputs": [{"name": "input-0", "shape": shape, "datatype": datatype, "data": data}]}


@pytest.mark.parametrize("data", [SETOSA + VIRGINICA, [SETOSA, VIRGINICA]], ids=["flat", "nested"])
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_v2_infer(ready_client: FlaskClient, data: list, datatype: str) -> None:
    response = ready_client.post("/v2/models/iris/infer", json={"id": "r1", **tensor(data, [2, 4], datatype)})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("iris", VERSION, "r1")
    predict, proba = body["outputs"]
    assert predict == {"name": "predict", "shape": [2], "datatype": "INT64", "data": [0, 2]}
    assert (proba["name"], proba["shape"], proba["datatype"], len(proba["data"])) == (
        "predict_proba",
        [2, 3],
        "FP64",
        6,
    )
    assert response.headers["X-Model-Version"] == VERSION


def test_v2_infer_returns_only_the_requested_output(ready_client: FlaskClient) -> None:
    body = {**tensor(SETOSA, [1, 4]), "outputs": [{"name": "predict_proba"}]}
    outputs = ready_client.post("/v2/models/iris/infer", json=body).get_json()["outputs"]
    assert [o["name"] for o in outputs] == ["predict_proba"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (tensor(SETOSA, [2, 4]), "inputs[0].data"),
        (tensor(SETOSA, [1, 3]), "inputs[0].shape"),
        (tensor(SETOSA, [1, 4], "INT64"), "inputs[0].datatype"),
        (tensor([*SETOSA[:3], -1.0], [1, 4]), "inputs[0].data[0].petal_width"),
        (tensor([SETOSA, [*VIRGINICA[:3], True]], [2, 4]), "inputs[0].data[1].petal_width"),
        (tensor([SETOSA] * (MAX_BATCH + 1), [MAX_BATCH + 1, 4]), "inputs[0].shape"),
        ({"inputs": []}, "inputs"),
        ({**tensor(SETOSA, [1, 4]), "outputs": [{"name": "nope"}]}, "outputs[0].name"),
        ({**tensor(SETOSA, [1, 4]), "id": 7}, "id"),
        ({**tensor(SETOSA, [1, 4]), "colour": "red"}, "colour"),
    ],
)
def test_v2_bad_input_is_400_in_the_protocol_shape(ready_client: FlaskClient, body: dict, field: str) -> None:
    response = ready_client.post("/v2/models/iris/infer", json=body)
    assert response.status_code == 400
    assert list(response.get_json()) == ["error"]
    assert response.get_json()["error"].startswith(field + ":")


def test_v2_metadata_and_unknown_model(ready_client: FlaskClient) -> None:
    meta = ready_client.get("/v2/models/iris").get_json()
    assert (meta["name"], meta["versions"], meta["inputs"][0]["shape"]) == ("iris", [VERSION], [-1, 4])
    assert ready_client.get("/v2").get_json()["name"] == "iris-predictor"
    missing = ready_client.get("/v2/models/roses/ready")
    assert missing.status_code == 404
    assert "roses" in missing.get_json()["error"]


def test_health_before_and_after_a_model(app: Flask, fitted_model: Pipeline) -> None:
    client = app.test_client()
    for path in ("/v2/health/live", "/healthz"):
        assert client.get(path).status_code == 200
    for path in ("/v2/health/ready", "/readyz", "/v2/models/iris/ready"):
        assert client.get(path).status_code == 503
    assert client.get("/readyz").get_json()["error"]["code"] == "model_not_ready"
    install(app, fitted_model)
    for path in ("/v2/health/ready", "/readyz", "/v2/models/iris/ready"):
        assert client.get(path).status_code == 200


def test_model_info_without_a_model(client: FlaskClient) -> None:
    body = client.get("/v1/model").get_json()
    assert (body["model_version"], body["ready"], body["history"], body["pinned"]) == (None, False, [], None)
    assert client.get("/v1/model").headers["X-Model-Version"] == "none"


def test_metrics_count_requests_predictions_and_latency(ready_client: FlaskClient) -> None:
    ready_client.post("/api", json=[SETOSA, VIRGINICA, VIRGINICA])
    ready_client.post("/predict", json={"instances": []})
    ready_client.get("/nowhere")
    response = ready_client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.data.decode()
    assert 'predictor_requests_total{route="/api",status="200"} 1.0' in text
    assert 'predictor_requests_total{route="/predict",status="400"} 1.0' in text
    assert 'predictor_requests_total{route="unmatched",status="404"} 1.0' in text
    assert 'predictor_request_duration_seconds_count{route="/api",status="200"} 1.0' in text
    assert 'predictor_predictions_total{species="virginica"} 2.0' in text
    assert 'predictor_predictions_total{species="setosa"} 1.0' in text


@pytest.mark.parametrize(
    ("path", "status", "code"), [("/nowhere", 404, "not_found"), ("/predict", 405, "method_not_allowed")]
)
def test_unknown_routes_and_methods_are_json(client: FlaskClient, path: str, status: int, code: str) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert response.mimetype == "application/json"
    assert set(response.get_json()["error"]) == {"code", "message", "details"}


def test_an_unexpected_exception_is_a_json_500_without_traceback(ready_client: FlaskClient, app: Flask) -> None:
    class Broken:
        def predict_proba(self, x):
            raise RuntimeError("secret internals")

    install(app, Broken())
    response = ready_client.post("/api", json=SETOSA)
    assert response.status_code == 500
    assert response.get_json() == {"error": {"code": "internal", "message": "internal server error", "details": None}}
    assert b"secret" not in response.data


@pytest.mark.parametrize(
    ("method", "path"), [("post", "/admin/reload"), ("put", "/admin/pin"), ("delete", "/admin/pin")]
)
def test_admin_is_404_without_a_configured_token(offline_settings: PredictorSettings, method: str, path: str) -> None:
    client = create_app(offline_settings.model_copy(update={"admin_token": None})).test_client()
    response = getattr(client, method)(path, headers={"Authorization": "Bearer anything"})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {ADMIN_TOKEN}", ADMIN_TOKEN, "Bearer "])
def test_admin_needs_the_bearer_token(client: FlaskClient, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = client.post("/admin/reload", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_admin_reload_with_the_store_down_is_503(admin: Admin) -> None:
    response = admin.reload()
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "store_unavailable"


@pytest.mark.parametrize("body", [{"version": "latest"}, {"version": 3}, {}, {"version": VERSION, "x": 1}, []])
def test_admin_pin_rejects_a_malformed_version(admin: Admin, body: object) -> None:
    response = admin.pin(body)
    assert response.status_code == 400


@pytest.mark.integration
def test_without_a_handover_the_admin_routes_act_on_this_process(live_app: Flask, store, fitted_model) -> None:
    """A test client has no pod agent (no HANDOVER_DIR): the process is its own pod, its registry decides."""
    client = live_app.test_client()
    admin = Admin(client)
    old, new = publish(store, fitted_model), publish(store, fitted_model)
    reloaded = admin.reload().get_json()
    assert (reloaded["model_version"], reloaded["record"]["outcome"]) == (new.version, "swapped")
    assert admin.reload().get_json()["record"] is None  # idempotent
    pinned = admin.pin(old.version)
    assert pinned.status_code == 200
    assert (pinned.get_json()["pinned"], pinned.headers["X-Model-Version"]) == (old.version, old.version)
    assert admin.pin(old.version).status_code == 200
    missing = admin.pin("20200101T000000000000Z")
    assert (missing.status_code, missing.get_json()["record"]["reason"]) == (422, "not_found")
    info = client.get("/v1/model").get_json()
    assert (info["model_version"], info["pinned"], info["lineage"]["version"]) == (old.version,) * 3
    assert [h["outcome"] for h in info["history"]][:2] == ["rejected", "swapped"]
    unpinned = admin.unpin().get_json()
    assert (unpinned["model_version"], unpinned["pinned"]) == (new.version, None)
    assert admin.unpin().status_code == 200
