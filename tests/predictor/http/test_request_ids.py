"""Request ids over HTTP and what the routes record (the app's data plane given a real log on a spool folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.iris import EXAMPLES
from predictor.http import extensions
from predictor.predlog.log import PredictionLog
from predictor.predlog.metrics import PredictionLogCounters
from predictor.predlog.record import Answer, Record, Refusal, from_line
from predictor.predlog.spool import Spool
from tests.predictor.conftest import VERSION

SETOSA = list(EXAMPLES["setosa"])
INFER = "/v2/models/iris/infer"


@pytest.fixture
def spool(app: Flask, ready_client: FlaskClient, tmp_path: Path) -> Path:
    extensions.dataplane(app).log = PredictionLog(Spool(tmp_path, PredictionLogCounters()))
    return tmp_path


def records(app: Flask, spool: Path) -> dict[str, Record]:
    assert extensions.dataplane(app).log.close()
    found = [from_line(line) for path in sorted(spool.glob("*.jsonl")) for line in path.read_bytes().splitlines()]
    return {r.id: r for r in found}


def v2(row: list[float], **more: object) -> dict[str, object]:
    return {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": row}], **more}


def test_answers_carry_and_record_their_ids(app: Flask, ready_client: FlaskClient, spool: Path) -> None:
    assert (
        ready_client.post("/predict", json={"instances": [SETOSA]}, headers={"X-Request-Id": "p"}).headers[
            "X-Request-Id"
        ]
        == "p"
    )
    assert ready_client.post("/api", json=SETOSA, headers={"X-Request-Id": "a"}).json == "[0]"
    answer = ready_client.post(INFER, json=v2(SETOSA, id="body"), headers={"X-Request-Id": "header"})
    assert (answer.json["id"], answer.headers["X-Request-Id"]) == ("body", "body")
    generated = ready_client.post(INFER, json=v2(SETOSA))
    assert generated.json["id"] == generated.headers["X-Request-Id"]
    found = records(app, spool)
    assert {k: (r.route, r.version) for k, r in found.items()} == {
        "p": ("predict", VERSION), "a": ("api", VERSION), "body": ("v2", VERSION),
        generated.json["id"]: ("v2", VERSION),
    }  # fmt: skip
    body = found["body"]
    assert isinstance(body, Answer)
    assert (body.features, body.classes) == ([SETOSA], ["setosa"])


def test_refusals_are_recorded_without_features_under_the_clients_id(
    app: Flask, ready_client: FlaskClient, spool: Path
) -> None:
    refused = ready_client.post("/predict", json={"instances": [[1, 2]]}, headers={"X-Request-Id": "r"})
    assert (refused.status_code, refused.headers["X-Request-Id"]) == (400, "r")
    v2_refused = ready_client.post(INFER, json={"id": "v", "inputs": [{"name": "x"}]})
    assert (v2_refused.status_code, v2_refused.headers["X-Request-Id"]) == (400, "v")
    found = records(app, spool)
    for request_id, route in (("r", "predict"), ("v", "v2")):
        refusal = found[request_id]
        assert isinstance(refusal, Refusal)
        assert (refusal.route, refusal.status, refusal.version) == (route, 400, VERSION)
        assert refusal.reason


@pytest.mark.parametrize(
    ("path", "body", "headers", "field"),
    [
        ("/predict", {"instances": [SETOSA]}, {"X-Request-Id": "has space"}, "X-Request-Id"),
        ("/api", SETOSA, {"X-Request-Id": "x" * 129}, "X-Request-Id"),
        (INFER, v2(SETOSA, id=""), {}, "id"),
    ],
)
def test_an_id_the_log_cannot_hold_is_a_400_naming_its_field(
    ready_client: FlaskClient, path: str, body: object, headers: dict[str, str], field: str
) -> None:
    response = ready_client.post(path, json=body, headers=headers)
    assert response.status_code == 400
    message = response.json["error"] if path == INFER else response.json["error"]["message"]
    assert message.startswith(f"{field}:")
    assert response.headers["X-Request-Id"] not in ("", headers.get("X-Request-Id"))


def test_every_answer_carries_an_id(client: FlaskClient) -> None:
    assert client.get("/v2/health/live", headers={"X-Request-Id": "mine"}).headers["X-Request-Id"] == "mine"
    assert client.get("/nowhere", headers={"X-Request-Id": "bad id"}).headers["X-Request-Id"] != "bad id"
    assert client.get("/v2/health/ready").headers["X-Request-Id"]
