"""Prediction log settings: read from the environment, the spool folder beside the handover by default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from predictor.predlog.settings import PredictionLogSettings


def test_the_spool_is_beside_the_handover_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PredictionLogSettings.model_validate({}).spool_dir(Path("/run/handover")) == Path(
        "/run/handover-predictions"
    )
    monkeypatch.setenv("PREDICTION_LOG_DIR", "/var/spool/predictions")
    assert PredictionLogSettings.model_validate({}).spool_dir(Path("/run/handover")) == Path("/var/spool/predictions")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREDICTION_LOG_SAMPLE_RATE", "0.25")
    monkeypatch.setenv("PREDICTION_LOG_ENABLED", "false")
    settings = PredictionLogSettings.model_validate({})
    assert settings.prediction_log_sample_rate == 0.25
    assert settings.prediction_log_enabled is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("prediction_log_sample_rate", 1.5),
        ("prediction_log_queue_size", 0),
        ("prediction_log_prefix", "predictions"),  # no trailing slash
        ("prediction_log_prefix", "/predictions/"),
    ],
)
def test_bad_values_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValidationError, match=name):
        PredictionLogSettings.model_validate({name: value})
