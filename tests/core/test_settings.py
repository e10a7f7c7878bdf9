"""core.settings: environment parsing, the signing key and the one-line configuration error."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import settings
from core.settings import CommonSettings, SigningSettings
from trainer.settings import TrainerSettings

ENV_NAMES = [
    *(name.upper() for name in TrainerSettings.model_fields),
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def test_defaults() -> None:
    common = settings.load(CommonSettings)
    assert (common.gcs_bucket, common.gcs_retry_deadline, common.storage_emulator_host) == ("iris-models", 30.0, None)


def test_missing_signing_key_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        settings.load(SigningSettings)
    assert info.value.code == 2
    line = one_line(capsys)
    assert line.startswith("configuration error:")
    assert "MODEL_SIGNING_KEY" in line


def test_signing_key_from_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_SIGNING_KEY", "s3cret")
    loaded = settings.load(SigningSettings)
    assert loaded.signing_key() == b"s3cret"
    assert "s3cret" not in repr(loaded)


def test_signing_key_from_file_strips_the_trailing_newline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"from-file\n")
    monkeypatch.setenv("MODEL_SIGNING_KEY_FILE", str(key_file))
    assert settings.load(SigningSettings).signing_key() == b"from-file"


def test_missing_key_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODEL_SIGNING_KEY_FILE", "/nonexistent/key")
    with pytest.raises(SystemExit, match="2"):
        settings.load(SigningSettings)
    line = one_line(capsys)
    assert "MODEL_SIGNING_KEY_FILE" in line
    assert "/nonexistent/key" in line


@pytest.mark.parametrize(
    ("name", "value"),
    [("GCS_RETRY_DEADLINE", "abc"), ("GCS_RETRY_DEADLINE", "-1"), ("ACCURACY_FLOOR", "1.5"), ("RANDOM_SEED", "4.5x")],
)
def test_malformed_numbers_exit_2_naming_the_variable(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODEL_SIGNING_KEY", "k")
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as info:
        settings.load(TrainerSettings)
    assert info.value.code == 2
    assert f"{name}:" in one_line(capsys)


def test_trainer_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_SIGNING_KEY", "k")
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

    monkeypatch.setenv("MODEL_SIGNING_KEY", "k")
    monkeypatch.setenv("ADMIN_TOKEN", token)
    with pytest.raises(SystemExit) as info:
        settings.load(PredictorSettings)
    assert info.value.code == 2
    assert "ADMIN_TOKEN:" in one_line(capsys)
    monkeypatch.setenv("ADMIN_TOKEN", "x" * 16)
    assert settings.load(PredictorSettings).admin_token is not None
