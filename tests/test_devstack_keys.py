"""devstack.keys: the local stack's key pair is made once, private key mode 600, public key under its key id."""

from __future__ import annotations

from pathlib import Path

from core import signing
from core.settings import TrustSettings
from devstack import keys


def test_the_pair_is_made_once_and_the_public_folder_holds_only_the_public_key(tmp_path: Path) -> None:
    private, public = keys.ensure_pair(tmp_path / "keys")
    first = private.read_bytes()
    assert private.stat().st_mode & 0o777 == 0o600
    assert keys.ensure_pair(tmp_path / "keys") == (private, public)
    assert private.read_bytes() == first
    [pem] = public.iterdir()
    verifier = signing.load_verifier(pem.read_bytes())
    assert pem.name == verifier.key_id.replace(":", "-") + ".pem"
    assert b"PRIVATE" not in pem.read_bytes()


def test_a_reader_configured_from_the_env_verifies_what_the_keyring_signs(tmp_path: Path) -> None:
    env = keys.env(tmp_path / "keys")
    reader = TrustSettings.model_validate({"model_public_keys_dir": env["MODEL_PUBLIC_KEYS_DIR"]}).keyring()
    fields = {"version": "v"}
    signer = keys.keyring(tmp_path / "keys")
    assert signer.signer is not None
    assert reader.verify(signer.signer.key_id, fields, signer.sign(fields))


def test_the_split_salt_is_made_once_secret_and_read_by_the_trainer(tmp_path: Path) -> None:
    from trainer.settings import TrainerSettings

    env = keys.env(tmp_path / "keys")
    salt = Path(env["SPLIT_SALT_FILE"])
    assert salt.stat().st_mode & 0o777 == 0o600
    first = salt.read_text()
    assert len(first) >= 32
    assert keys.env(tmp_path / "keys")["SPLIT_SALT_FILE"] == str(salt)
    assert salt.read_text() == first
    trainer = TrainerSettings.model_validate({k.lower(): v for k, v in env.items()})
    assert (
        trainer.split_salt_value()
        == TrainerSettings.model_validate(
            {**{k.lower(): v for k, v in env.items() if k != "SPLIT_SALT_FILE"}, "split_salt": first}
        ).split_salt_value()
    )
    assert keys.env(tmp_path / "other")["SPLIT_SALT_FILE"] != str(salt)
    assert (tmp_path / "other" / "split-salt").read_text() != first
