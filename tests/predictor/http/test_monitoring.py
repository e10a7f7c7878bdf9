"""GET /v1/model/monitoring and /v1/model's live_accuracy: what the pod's model agent handed over, read by a worker
(files present, missing, corrupt, replaced); never an error."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.pipeline import Pipeline

from core import liveaccuracy
from predictor.http.app import create_app
from predictor.lifecycle import handover
from predictor.settings import PredictorSettings
from tests.predictor.conftest import VERSION, install

UPDATED = "2026-12-05T01:30:00.123456Z"
OLDER = "20251201T000000000000Z"
DOCUMENT: dict[str, Any] = {
    "schema": 1,
    "updated": UPDATED,
    "versions": {
        VERSION: {"correct": 41, "total": 45, "series": [{"time": UPDATED, "correct": 41, "total": 45}],
                  "offline": {"accuracy": 0.97, "evaluation": 0.96, "accuracy_floor": 0.9}},
        OLDER: {"correct": 0, "total": 0, "series": []},
    },
}  # fmt: skip
DRIFT: dict[str, Any] = {
    "updated": UPDATED, "version": VERSION, "window_rows": 412,
    "features": {"petal_length": {"score": 0.31, "threshold": 0.25, "drifted": True},
                 "predicted_class": {"score": None, "threshold": 0.15, "drifted": False}},
}  # fmt: skip


@pytest.fixture
def app(offline_settings: PredictorSettings, tmp_path: Path) -> Flask:
    return create_app(offline_settings.model_copy(update={"handover_dir": str(tmp_path)}))


@pytest.fixture
def client(app: Flask, fitted_model: Pipeline) -> FlaskClient:
    install(app, fitted_model)
    return app.test_client()


def write(tmp_path: Path) -> None:
    handover.write_live_accuracy(tmp_path, liveaccuracy.dump(liveaccuracy.parse(json.dumps(DOCUMENT).encode())))
    handover.write_drift(tmp_path, DRIFT)


def test_the_handed_over_figures_are_answered(client: FlaskClient, tmp_path: Path) -> None:
    write(tmp_path)
    body = client.get("/v1/model/monitoring").get_json()
    assert body == {"version": VERSION, "accuracy": DOCUMENT, "drift": DRIFT}
    live = client.get("/v1/model").get_json()["live_accuracy"]
    assert live == {"accuracy": round(41 / 45, 4), "correct": 41, "total": 45, "updated": UPDATED}


def test_missing_files_answer_null(client: FlaskClient) -> None:
    response = client.get("/v1/model/monitoring")
    assert response.status_code == 200
    assert response.get_json() == {"version": VERSION, "accuracy": None, "drift": None}
    assert client.get("/v1/model").get_json()["live_accuracy"] is None


def test_a_version_without_feedback_has_no_live_accuracy(app: Flask, fitted_model: Pipeline, tmp_path: Path) -> None:
    install(app, fitted_model, OLDER)  # in the document with no answers yet
    write(tmp_path)
    assert app.test_client().get("/v1/model").get_json()["live_accuracy"] is None


@pytest.mark.parametrize("junk", [b"", b"{", b'{"schema": 1}', b"\xff\xfe", b"[]"])
def test_corrupt_files_answer_null_until_rewritten(client: FlaskClient, tmp_path: Path, junk: bytes) -> None:
    (tmp_path / handover.LIVE_ACCURACY).write_bytes(junk)
    (tmp_path / handover.DRIFT).write_bytes(junk)
    assert client.get("/v1/model/monitoring").get_json() == {"version": VERSION, "accuracy": None, "drift": None}
    assert client.get("/v1/model").status_code == 200
    write(tmp_path)  # the agent's next write replaces them (another inode, size and mtime)
    body = client.get("/v1/model/monitoring").get_json()
    assert body["accuracy"] == DOCUMENT
    assert body["drift"] == DRIFT


def test_a_replaced_file_is_read_again(client: FlaskClient, tmp_path: Path) -> None:
    write(tmp_path)
    assert client.get("/v1/model/monitoring").get_json()["drift"]["window_rows"] == 412
    handover.write_drift(tmp_path, {**DRIFT, "window_rows": 500})
    assert client.get("/v1/model/monitoring").get_json()["drift"]["window_rows"] == 500


def test_a_symlink_or_fifo_is_not_read(client: FlaskClient, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(DRIFT))
    (tmp_path / handover.DRIFT).symlink_to(target)
    os.mkfifo(tmp_path / handover.LIVE_ACCURACY)
    assert client.get("/v1/model/monitoring").get_json() == {"version": VERSION, "accuracy": None, "drift": None}


def test_without_a_model_or_a_handover(offline_settings: PredictorSettings) -> None:
    body = create_app(offline_settings).test_client().get("/v1/model/monitoring").get_json()
    assert body == {"version": None, "accuracy": None, "drift": None}
