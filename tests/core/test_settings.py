"""core.settings: environment parsing and the one-line configuration error (signing keys: test_signing_settings)."""

from __future__ import annotations

import pytest

from core import settings
from core.settings import CommonSettings
from tests import keys
from trainer.settings import TrainerSettings

ENV_NAMES = [
    *(name.upper() for name in TrainerSettings.model_fields),
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def use_test_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in keys.env().items():
        monkeypatch.setenv(name, value)


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def test_defaults() -> None:
    common = settings.load(CommonSettings)
    assert (common.gcs_bucket, common.gcs_retry_deadline, common.storage_emulator_host) == ("iris-models", 30.0, None)


@pytest.mark.parametrize(
    ("name", "value"),
    [("GCS_RETRY_DEADLINE", "abc"), ("GCS_RETRY_DEADLINE", "-1"), ("ACCURACY_FLOOR", "1.5"), ("RANDOM_SEED", "4.5x")],
)
def test_malformed_numbers_exit_2_naming_the_variable(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_test_keys(monkeypatch)
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as info:
        settings.load(TrainerSettings)
    assert info.value.code == 2
    assert f"{name}:" in one_line(capsys)


def test_trainer_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    use_test_keys(monkeypatch)
    monkeypatch.setenv("ACCURACY_FLOOR", "0.5")
    monkeypatch.setenv("GCS_RETRY_DEADLINE", "2.5")
    monkeypatch.setenv("UNRELATED_SETTING", "ignored")
    loaded = settings.load(TrainerSettings)
    assert (loaded.accuracy_floor, loaded.gcs_retry_deadline, loaded.train_schedule) == (0.5, 2.5, "0 * * * *")


@pytest.mark.parametrize("token", ["", "short-token"], ids=["empty", "short"])
def test_an_empty_or_short_admin_token_refuses_to_start(
    token: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from predictor.settings import PredictorSettings

    use_test_keys(monkeypatch)
    monkeypatch.setenv("ADMIN_TOKEN", token)
    with pytest.raises(SystemExit) as info:
        settings.load(PredictorSettings)
    assert info.value.code == 2
    assert "ADMIN_TOKEN:" in one_line(capsys)
    monkeypatch.setenv("ADMIN_TOKEN", "x" * 16)
    assert settings.load(PredictorSettings).admin_token is not None
