"""ADMIN_PORT: /admin/* and /metrics answer only on the admin listener; everything else on both."""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.pipeline import Pipeline
from werkzeug.test import TestResponse

from predictor.http.admin_port import private
from predictor.http.app import create_app
from predictor.settings import PredictorSettings
from tests.predictor.conftest import ADMIN_TOKEN, install

PUBLIC, ADMIN = 8000, 9090
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Listener:
    """A test client whose requests arrive on `port` (the WSGI SERVER_PORT gunicorn sets from the listener)."""

    def __init__(self, offline_settings: PredictorSettings, fitted_model: Pipeline, port: int, admin: int | None):
        app = create_app(offline_settings.model_copy(update={"port": PUBLIC, "admin_port": admin}))
        install(app, fitted_model)
        self.client, self.base_url = app.test_client(), f"http://127.0.0.1:{port}"

    def open(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        return self.client.open(path, method=method, base_url=self.base_url, **kwargs)


@pytest.mark.parametrize("path", ["/admin", "/admin/pin", "/admin/reload", "/metrics", "/metrics/"])
def test_private_paths(path: str) -> None:
    assert private(path)


@pytest.mark.parametrize("path", ["/", "/api", "/predict", "/metricsx", "/administrator", "/v2/health/ready"])
def test_public_paths(path: str) -> None:
    assert not private(path)


def test_admin_and_metrics_are_404_on_the_public_port(
    offline_settings: PredictorSettings, fitted_model: Pipeline
) -> None:
    public = Listener(offline_settings, fitted_model, PUBLIC, ADMIN)
    assert public.open("GET", "/metrics").status_code == 404
    answer = public.open("PUT", "/admin/pin", headers=BEARER, json={"version": "latest"})
    assert answer.status_code == 404
    assert answer.get_json()["error"]["message"] == "not served on this port"
    # a Host header naming the admin port changes nothing: the listener decides
    assert public.open("GET", "/metrics", headers={"Host": f"127.0.0.1:{ADMIN}"}).status_code == 404
    assert public.open("POST", "/api", json=[5.1, 3.5, 1.4, 0.2]).status_code == 200
    assert public.open("GET", "/v2/health/ready").status_code == 200


def test_admin_port_serves_admin_metrics_and_the_rest(
    offline_settings: PredictorSettings, fitted_model: Pipeline
) -> None:
    admin = Listener(offline_settings, fitted_model, ADMIN, ADMIN)
    assert admin.open("GET", "/metrics").status_code == 200
    assert admin.open("PUT", "/admin/pin", headers=BEARER, json={"version": "latest"}).status_code == 400
    assert admin.open("POST", "/admin/reload").status_code == 401  # the token is still required there
    assert admin.open("GET", "/v2/health/live").status_code == 200


def test_without_admin_port_everything_shares_port(offline_settings: PredictorSettings, fitted_model: Pipeline) -> None:
    single = Listener(offline_settings, fitted_model, PUBLIC, None)
    assert single.open("GET", "/metrics").status_code == 200
    assert single.open("PUT", "/admin/pin", headers=BEARER, json={"version": "latest"}).status_code == 400
