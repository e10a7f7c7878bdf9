"""Signing settings: Ed25519 by default (trainer: private key; readers: public keys only), HMAC only when asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core import settings, signing
from predictor.settings import PredictorSettings
from tests import keys
from trainer.settings import TrainerSettings

NAMES = {name.upper() for cls in (TrainerSettings, PredictorSettings) for name in cls.model_fields}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPLIT_SALT", keys.SPLIT_SALT)  # the trainer's other secret, not what these tests are about


def refused(cls: type[settings.S], capsys: pytest.CaptureFixture[str]) -> str:
    """Loading `cls` exits 2 with one line; returns it."""
    with pytest.raises(SystemExit) as info:
        settings.load(cls)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("configuration error:")
    return err


def test_ed25519_is_the_default_and_a_predictor_holds_only_public_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_PUBLIC_KEYS_DIR", str(keys.key_files()[1]))
    loaded = settings.load(PredictorSettings)
    assert loaded.model_signing_algorithm == "ed25519"
    keyring = loaded.keyring()
    assert keyring.signer is None
    assert set(keyring.trusted) == {keys.SIGNER.key_id}


def test_a_private_key_given_to_a_predictor_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in keys.env().items():
        monkeypatch.setenv(name, value)
    assert settings.load(PredictorSettings).keyring().signer is None


def test_the_trainer_signs_with_its_private_key_and_trusts_what_the_predictors_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, old_public = signing.generate_ed25519()
    (tmp_path / "previous.pem").write_bytes(old_public)
    (tmp_path / "README").write_text("not a key: only *.pem files are read")
    monkeypatch.setenv("MODEL_SIGNING_PRIVATE_KEY_FILE", str(keys.key_files()[0]))
    monkeypatch.setenv("MODEL_PUBLIC_KEYS_DIR", str(tmp_path))
    keyring = settings.load(TrainerSettings).keyring()
    assert keyring.signer is not None
    assert keyring.signer.key_id == keys.SIGNER.key_id
    assert set(keyring.trusted) == {signing.load_verifier(old_public).key_id}  # its own key is not trusted yet
    (tmp_path / "trainer.pem").write_bytes(keys.SIGNER.public_pem())
    trusted = settings.load(TrainerSettings).keyring().trusted
    assert set(trusted) == {keys.SIGNER.key_id, signing.load_verifier(old_public).key_id}


def test_a_trainer_without_public_keys_trusts_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_SIGNING_PRIVATE_KEY_FILE", str(keys.key_files()[0]))
    assert set(settings.load(TrainerSettings).keyring().trusted) == {keys.SIGNER.key_id}


def test_a_trainer_without_a_private_key_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODEL_PUBLIC_KEYS_DIR", str(keys.key_files()[1]))
    assert "MODEL_SIGNING_PRIVATE_KEY_FILE must be set" in refused(TrainerSettings, capsys)


def test_a_predictor_without_public_keys_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "MODEL_PUBLIC_KEYS_DIR" in refused(PredictorSettings, capsys)
    monkeypatch.setenv("MODEL_PUBLIC_KEYS_DIR", str(tmp_path))
    assert "at least one Ed25519 public key" in refused(PredictorSettings, capsys)
    monkeypatch.setenv("MODEL_PUBLIC_KEYS_DIR", str(tmp_path / "missing"))
    assert "no such folder" in refused(PredictorSettings, capsys)


def test_a_private_key_in_the_public_folder_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    private, _ = signing.generate_ed25519()
    (tmp_path / "leaked.pem").write_bytes(private)
    monkeypatch.setenv("MODEL_PUBLIC_KEYS_DIR", str(tmp_path))
    assert "leaked.pem" in refused(PredictorSettings, capsys)


def test_a_key_of_another_algorithm_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "ec.pem").write_bytes(pem)
    monkeypatch.setenv("MODEL_SIGNING_PRIVATE_KEY_FILE", str(tmp_path / "ec.pem"))
    assert "not an Ed25519 private key" in refused(TrainerSettings, capsys)


def test_an_hmac_key_without_choosing_hmac_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in keys.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODEL_SIGNING_KEY", "s3cret-s3cret-s3cret")
    assert "MODEL_SIGNING_ALGORITHM" in refused(TrainerSettings, capsys)


def test_the_hmac_option_shares_one_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_SIGNING_ALGORITHM", "hmac-sha256")
    monkeypatch.setenv("MODEL_SIGNING_KEY", "s3cret")
    trainer, predictor = settings.load(TrainerSettings), settings.load(PredictorSettings)
    assert "s3cret" not in repr(trainer)
    signer = trainer.keyring().signer
    assert signer is not None
    assert signer.key_id.startswith("hmac-sha256:")
    assert set(predictor.keyring().trusted) == {signer.key_id}


def test_the_hmac_key_file_strips_the_trailing_newline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "key").write_bytes(b"from-file\n")
    monkeypatch.setenv("MODEL_SIGNING_ALGORITHM", "hmac-sha256")
    monkeypatch.setenv("MODEL_SIGNING_KEY_FILE", str(tmp_path / "key"))
    assert set(settings.load(PredictorSettings).keyring().trusted) == {signing.HmacKey(b"from-file").key_id}


def test_the_hmac_option_without_a_key_names_the_variables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODEL_SIGNING_ALGORITHM", "hmac-sha256")
    assert "MODEL_SIGNING_KEY or MODEL_SIGNING_KEY_FILE" in refused(PredictorSettings, capsys)
    monkeypatch.setenv("MODEL_SIGNING_KEY_FILE", "/nonexistent/key")
    assert "/nonexistent/key" in refused(PredictorSettings, capsys)
