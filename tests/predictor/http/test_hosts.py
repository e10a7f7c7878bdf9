"""ALLOWED_HOSTS in the predictor: another Host gets 400 in the project's error format on every route (DNS rebinding
cannot read /v1/model or /metrics), loopback names keep working, and the default `*` answers any Host."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from predictor.http.app import create_app
from predictor.settings import PredictorSettings

LOOPBACK = "127.0.0.1,localhost,[::1]"


@pytest.fixture
def guarded(offline_settings: PredictorSettings) -> FlaskClient:
    return create_app(offline_settings.model_copy(update={"allowed_hosts": LOOPBACK})).test_client()


@pytest.mark.parametrize("path", ["/v1/model", "/metrics", "/", "/healthz", "/nowhere"])
def test_a_rebound_host_is_refused_with_400(guarded: FlaskClient, path: str) -> None:
    response = guarded.get(path, headers={"Host": "evil.example:8080"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "host_not_allowed"
    assert "evil.example:8080" in response.get_json()["error"]["message"]


def test_the_v2_routes_answer_in_their_own_error_format(guarded: FlaskClient) -> None:
    response = guarded.get("/v2/health/live", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert isinstance(json.loads(response.data)["error"], str)


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost:16080", "localhost", "[::1]:8080"])
def test_loopback_hosts_are_served(guarded: FlaskClient, host: str) -> None:
    assert guarded.get("/v2/health/live", headers={"Host": host}).status_code == 200
    assert guarded.get("/v1/model", headers={"Host": host}).status_code != 400


def test_the_default_answers_any_host(client: FlaskClient) -> None:
    assert client.get("/v2/health/live", headers={"Host": "evil.example"}).status_code == 200
