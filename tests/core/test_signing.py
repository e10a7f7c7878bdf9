"""core.signing: Ed25519 keys by key id, rotation, the HMAC option and key loading."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448

from core import signing
from core.signing import Ed25519Signer, HmacKey, Keyring
from tests import keys

FIELDS = {"version": "20260101T000000000000Z", "sha256": "0" * 64}


def fresh_signer() -> Ed25519Signer:
    return signing.load_signer(signing.generate_ed25519()[0])


def test_a_reader_with_the_public_key_verifies_what_the_private_key_signed() -> None:
    signature = keys.KEYRING.sign(FIELDS)
    assert len(signature) == 128
    assert keys.READER.verify(keys.SIGNER.key_id, FIELDS, signature)
    assert not keys.READER.verify(keys.SIGNER.key_id, FIELDS | {"sha256": "1" * 64}, signature)
    assert not keys.READER.verify(keys.OTHER.signer.key_id, FIELDS, signature)  # type: ignore[union-attr]
    assert not keys.READER.verify(keys.SIGNER.key_id, FIELDS, keys.OTHER.sign(FIELDS))


def test_a_reader_cannot_sign() -> None:
    with pytest.raises(RuntimeError, match="no signing key"):
        keys.READER.sign(FIELDS)


def test_key_ids_are_derived_from_the_key() -> None:
    pem = keys.SIGNER.public_pem()
    assert signing.load_verifier(pem).key_id == keys.SIGNER.key_id
    assert keys.SIGNER.key_id.startswith("ed25519:")
    assert len(keys.SIGNER.key_id) == len("ed25519:") + 16
    assert fresh_signer().key_id != keys.SIGNER.key_id
    assert HmacKey(b"a").key_id != HmacKey(b"b").key_id


def test_after_a_rotation_both_keys_verify_until_the_old_one_is_removed() -> None:
    old, new = keys.SIGNER, fresh_signer()
    by_old = Keyring.of(signer=old).sign(FIELDS)
    rotated = Keyring.of(signer=new, trusted=[signing.load_verifier(old.public_pem())])
    assert rotated.verify(old.key_id, FIELDS, by_old)
    assert rotated.verify(new.key_id, FIELDS, rotated.sign(FIELDS))
    retired = Keyring.of(trusted=[signing.load_verifier(new.public_pem())])
    assert not retired.verify(old.key_id, FIELDS, by_old)


def test_the_key_id_selects_the_key_so_a_signature_never_verifies_under_another() -> None:
    hmac_key = HmacKey(keys.SIGNER.public_pem())  # an HMAC secret an attacker can read
    both = Keyring.of(trusted=[keys.SIGNER, hmac_key])
    forged = Keyring.of(signer=hmac_key).sign(FIELDS)
    assert both.verify(hmac_key.key_id, FIELDS, forged)
    assert not both.verify(keys.SIGNER.key_id, FIELDS, forged)


def test_the_signature_is_bound_to_its_purpose() -> None:
    bare = keys.SIGNER.sign(signing.canonical(FIELDS).replace(signing.PURPOSE.encode(), b"something-else"))
    assert not keys.READER.verify(keys.SIGNER.key_id, FIELDS, bare)
    assert b'"purpose":"iris-model-artifact-lineage/v1"' in signing.canonical(FIELDS)


@pytest.mark.parametrize("signature", ["é" * 128, "zz" * 64, "", "00" * 64])
def test_a_malformed_signature_is_false_not_an_error(signature: str) -> None:
    assert not keys.READER.verify(keys.SIGNER.key_id, FIELDS, signature)
    hmac_key = HmacKey(b"k")
    assert not Keyring.of(trusted=[hmac_key]).verify(hmac_key.key_id, FIELDS, signature)


def test_the_hmac_option_signs_and_verifies_with_one_secret() -> None:
    ring = Keyring.of(signer=HmacKey(b"s" * 32))
    signature = ring.sign(FIELDS)
    assert len(signature) == 64
    assert Keyring.of(trusted=[HmacKey(b"s" * 32)]).verify(HmacKey(b"s" * 32).key_id, FIELDS, signature)
    assert not Keyring.of(trusted=[HmacKey(b"t" * 32)]).verify(HmacKey(b"s" * 32).key_id, FIELDS, signature)


def test_loading_refuses_the_wrong_kind_of_key() -> None:
    private, public = signing.generate_ed25519()
    with pytest.raises(ValueError, match="public key"):
        signing.load_verifier(private)
    with pytest.raises(ValueError, match="private key"):
        signing.load_signer(public)
    other = ed448.Ed448PrivateKey.generate()
    other_pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="not an Ed25519 private key"):
        signing.load_signer(other_pem)
    with pytest.raises(ValueError, match="not an Ed25519 public key"):
        signing.load_verifier(
            other.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_keys_made_with_openssl_load_and_the_shell_key_id_matches(tmp_path: Path) -> None:
    """The commands deploy/setup-gcp.sh and the README use to make a key pair and name its public key."""
    private, public = tmp_path / "private-key.pem", tmp_path / "public-key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private)], check=True, timeout=30)
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True, timeout=30)
    pipeline = f"openssl pkey -in {private} -pubout -outform DER | tail -c 32 | sha256sum | cut -c1-16"
    shell_id = subprocess.run(["bash", "-c", pipeline], check=True, capture_output=True, text=True).stdout.strip()
    signer = signing.load_signer(private.read_bytes())
    assert signer.key_id == f"ed25519:{shell_id}"
    assert signing.load_verifier(public.read_bytes()).key_id == signer.key_id
    assert Keyring.of(trusted=[signing.load_verifier(public.read_bytes())]).verify(
        signer.key_id, FIELDS, Keyring.of(signer=signer).sign(FIELDS)
    )
