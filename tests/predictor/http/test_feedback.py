"""POST /v1/feedback on the app (offline, with a handover so the prediction log and the feedback spool are on): the
contract's refusals name the field, the token, and each item's verdict, with accepted items in the feedback spool."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import ValidationError
from sklearn.pipeline import Pipeline
from werkzeug.test import TestResponse

from core import uuid7
from predictor.http import extensions
from predictor.http.app import create_app
from predictor.predlog import record
from predictor.predlog.log import in_sample
from predictor.predlog.spool import READY
from predictor.settings import PredictorSettings
from tests import polling
from tests.predictor.conftest import install

TOKEN = "feedback-test-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_ITEMS = 5
SETOSA = [5.1, 3.5, 1.4, 0.2]


def settings_for(offline_settings: PredictorSettings, tmp_path: Path, **more: Any) -> PredictorSettings:
    values = {
        **offline_settings.model_dump(), "admin_token": None, "handover_dir": str(tmp_path / "handover"),
        "prediction_log_dir": tmp_path / "spool", "feedback_token": TOKEN, "feedback_max_items": MAX_ITEMS, **more,
    }  # fmt: skip
    return PredictorSettings.model_validate(values)


@pytest.fixture
def make_app(offline_settings: PredictorSettings, tmp_path: Path) -> Any:
    apps: list[Flask] = []

    def make(**more: Any) -> Flask:
        app = create_app(settings_for(offline_settings, tmp_path, **more))
        apps.append(app)
        return app

    yield make
    for app in apps:
        extensions.dataplane(app).log.close()
        extensions.dataplane(app).feedback_log.close()


@pytest.fixture
def fb_app(make_app: Any) -> Flask:
    return make_app()


@pytest.fixture
def fb(fb_app: Flask) -> FlaskClient:
    return fb_app.test_client()


def send(client: FlaskClient, body: Any, headers: dict[str, str] | None = None) -> TestResponse:
    return client.post("/v1/feedback", json=body, headers=AUTH if headers is None else headers)


def field_of(response: TestResponse) -> tuple[int, str, str]:
    error = response.get_json()["error"]
    return response.status_code, error["details"]["field"], error["details"]["reason"]


def spooled_feedback(folder: Path) -> list[record.Record]:
    return [
        record.from_line(line) for path in sorted(folder.glob(f"*{READY}")) for line in path.read_bytes().splitlines()
    ]


def issued_ago(seconds: float) -> str:
    """A generated id (UUIDv7) as if issued `seconds` ago."""
    millis = int((time.time() - seconds) * 1000)
    return f"{millis:012x}" + uuid7.new()[12:]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"id": "p-1", "label": "tulip"}, "label", "expected a class name"),
        ({"id": "p-1", "label": 3}, "label", "expected a class name"),
        ({"id": "p-1", "label": True}, "label", "expected a class name"),
        ({"id": "p-1"}, "label", "missing field"),
        ({"label": "setosa"}, "id", "missing field"),
        ({"id": "a b", "label": "setosa"}, "id", "visible ASCII"),
        ({"id": "", "label": "setosa"}, "id", "visible ASCII"),
        ({"id": 7, "label": "setosa"}, "id", "visible ASCII"),
        ({"id": "p-1", "label": "setosa", "row": -1}, "row", "expected an integer"),
        ({"id": "p-1", "label": "setosa", "row": 1.5}, "row", "expected an integer"),
        ({"id": "p-1", "label": "setosa", "rows": 1}, "rows", "unknown field"),
        (
            {"feedback": [{"id": "a", "label": "setosa"}] * 3 + [{"id": "b", "label": "rose"}]},
            "feedback[3].label",
            "expected a class name",
        ),
        (
            {"feedback": [{"id": "a", "label": "setosa"}, {"id": "b", "label": 0, "row": -2}]},
            "feedback[1].row",
            "expected an integer",
        ),
        ({"feedback": [{"id": "a", "label": "setosa"}, 5]}, "feedback[1]", "expected a feedback item"),
        ({"feedback": []}, "feedback", f"1 to {MAX_ITEMS} feedback items"),
        ({"feedback": [{"id": "a", "label": "setosa"}] * (MAX_ITEMS + 1)}, "feedback", "FEEDBACK_MAX_ITEMS"),
        ({"feedback": [{"id": "a", "label": "setosa"}], "more": 1}, "more", "unknown field"),
        ([{"id": "a", "label": "setosa"}], "body", "expected a feedback item"),
    ],
)
def test_a_refused_body_names_the_field(fb: FlaskClient, body: Any, field: str, reason: str) -> None:
    status, named, why = field_of(send(fb, body))
    assert (status, named) == (400, field)
    assert reason in why


def test_malformed_oversized_and_non_json_bodies(fb: FlaskClient, offline_settings: PredictorSettings) -> None:
    response = fb.post("/v1/feedback", data=b'{"id": "a", ', headers={**AUTH, "Content-Type": "application/json"})
    assert field_of(response)[:2] == (400, "body")
    big = b'{"feedback": [' + b",".join([b'{"id": "p-1", "label": "setosa"}'] * 200) + b"]}"
    assert len(big) > offline_settings.max_body_bytes
    response = fb.post("/v1/feedback", data=big, headers={**AUTH, "Content-Type": "application/json"})
    assert (response.status_code, response.get_json()["error"]["code"]) == (413, "payload_too_large")
    response = fb.post("/v1/feedback", data=b"id=a", headers={**AUTH, "Content-Type": "text/plain"})
    assert response.status_code == 415


def test_the_token_is_required(make_app: Any, tmp_path: Path) -> None:
    client = make_app().test_client()
    body = {"id": "p-1", "label": "setosa"}
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
        response = send(client, body, headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="feedback"'
    assert send(client, body).status_code == 202
    token_file = tmp_path / "feedback.token"
    token_file.write_text(f"  {TOKEN}-from-file\n")
    from_file = make_app(feedback_token=None, feedback_token_file=token_file).test_client()
    assert send(from_file, body).status_code == 401
    assert send(from_file, body, {"Authorization": f"Bearer {TOKEN}-from-file"}).status_code == 202


def test_without_a_token_the_route_is_404_unless_public(make_app: Any) -> None:
    closed = make_app(feedback_token=None).test_client()
    response = send(closed, {"id": "p-1", "label": "setosa"}, {})
    assert response.status_code == 404
    assert "FEEDBACK_TOKEN" in response.get_json()["error"]["message"]
    assert "/v1/feedback" not in closed.get("/openapi.json").get_json()["paths"]
    public = make_app(feedback_token=None, feedback_public=True).test_client()
    assert send(public, {"id": "p-1", "label": "setosa"}, {}).status_code == 202
    assert "security" not in public.get("/openapi.json").get_json()["paths"]["/v1/feedback"]["post"]


def test_a_short_or_missing_token_file_refuses_to_start(offline_settings: PredictorSettings, tmp_path: Path) -> None:
    short = tmp_path / "short.token"
    short.write_text("too-short\n")
    for path in (short, tmp_path / "missing.token"):
        with pytest.raises(ValidationError, match="FEEDBACK_TOKEN_FILE"):
            settings_for(offline_settings, tmp_path, feedback_token=None, feedback_token_file=path)


def test_a_prediction_answered_here_is_labelled_and_spooled(
    fb_app: Flask, fitted_model: Pipeline, tmp_path: Path
) -> None:
    install(fb_app, fitted_model)
    client = fb_app.test_client()
    predicted = client.post("/predict", json={"instances": [SETOSA, SETOSA]})
    request_id = predicted.headers["X-Request-Id"]
    response = send(client, {"feedback": [
        {"id": request_id, "label": "Iris-Setosa"}, {"id": request_id, "label": 1, "row": 1},
    ]})  # fmt: skip
    assert response.status_code == 202
    assert response.get_json() == {"accepted": 2, "results": [
        {"id": request_id, "row": 0, "status": "accepted"}, {"id": request_id, "row": 1, "status": "accepted"},
    ]}  # fmt: skip
    single = send(client, {"id": "client-chosen-1", "label": " VIRGINICA "})
    assert (single.status_code, single.get_json()["accepted"]) == (202, 1)
    dataplane = extensions.dataplane(fb_app)
    assert dataplane.log.close()
    assert dataplane.feedback_log.close()

    feedback = spooled_feedback(tmp_path / "spool" / "feedback")
    assert [(r.id, r.row, r.label) for r in feedback if isinstance(r, record.Feedback)] == [
        (request_id, 0, "setosa"), (request_id, 1, "versicolor"), ("client-chosen-1", 0, "virginica"),
    ]  # fmt: skip
    assert len(feedback) == 3, "only feedback records in the feedback folder"
    predictions = spooled_feedback(tmp_path / "spool")
    assert [type(r) for r in predictions] == [record.Answer], "never mixed with the prediction log's files"
    assert predictions[0].id == request_id
    counters = dataplane.feedback_log.counters
    assert (counters.value("accepted"), counters.value("refused"), counters.value("dropped")) == (3, 0, 0)


def test_sampled_out_late_and_duplicate_items_are_answered_each(make_app: Any, tmp_path: Path) -> None:
    rate = 0.5
    client = make_app(prediction_log_sample_rate=rate).test_client()
    candidates = [f"req-{i}" for i in range(100)]
    kept = next(i for i in candidates if in_sample(i, rate))
    left_out = next(i for i in candidates if not in_sample(i, rate))
    fresh = next(i for i in (uuid7.new() for _ in range(200)) if in_sample(i, rate))
    old = next(i for i in (issued_ago(8 * 86_400) for _ in range(200)) if in_sample(i, rate))
    response = send(client, {"feedback": [
        {"id": kept, "label": "setosa"}, {"id": left_out, "label": "setosa"}, {"id": old, "label": "virginica"},
        {"id": fresh, "label": "virginica", "row": 0}, {"id": kept, "label": "versicolor", "row": 0},
    ]})  # fmt: skip
    assert response.status_code == 202
    answer = response.get_json()
    assert answer["accepted"] == 2
    assert [r["status"] for r in answer["results"]] == ["accepted", "sampled_out", "late", "accepted", "duplicate"]
    assert [r["id"] for r in answer["results"]] == [kept, left_out, old, fresh, kept]
    reasons = [r.get("reason", "") for r in answer["results"]]
    assert "PREDICTION_LOG_SAMPLE_RATE=0.5" in reasons[1]
    assert "FEEDBACK_MAX_AGE" in reasons[2]
    assert "feedback[0]" in reasons[4]
    assert "reason" not in answer["results"][0]

    only_refused = send(client, {"id": left_out, "label": 2})
    assert (only_refused.status_code, only_refused.get_json()["accepted"]) == (422, 0)


def test_with_the_prediction_log_off_every_item_is_not_logged(make_app: Any) -> None:
    client = make_app(prediction_log_enabled=False).test_client()
    response = send(client, {"id": "p-1", "label": "setosa"})
    assert response.status_code == 422
    [result] = response.get_json()["results"]
    assert result["status"] == "not_logged"
    assert "PREDICTION_LOG_ENABLED" in result["reason"]


def test_a_full_spool_answers_503_and_keeps_nothing(make_app: Any, tmp_path: Path) -> None:
    """Feedback waiting for the bucket over FEEDBACK_LOG_MAX_SPOOL_BYTES: new items are refused, never dropped."""
    client = make_app(feedback_log_max_spool_bytes=64 * 1024).test_client()
    folder = tmp_path / "spool" / "feedback"
    folder.mkdir(parents=True)
    waiting = folder / f"20261205T000000-{'0' * 12}-000001{READY}"
    waiting.write_bytes(b'{"x":1}\n' * 10_000)  # 80 KB that the bucket has not taken yet
    # the first item starts the process's writer, which measures the folder within MEASURE_S

    def refused() -> TestResponse | None:
        response = send(client, {"id": "later", "label": "setosa"})
        return response if response.status_code == 503 else None

    response = polling.wait_for(refused, 5, "the writer finds the spool full")
    assert response.headers["Retry-After"] == "5"
    [result] = response.get_json()["results"]
    assert result["status"] == "unavailable"
    waiting.unlink()  # the shipper caught up

    def accepted_again() -> bool:
        return send(client, {"id": "again", "label": "setosa"}).status_code == 202

    polling.wait_for(accepted_again, 5, "the writer finds room again")
