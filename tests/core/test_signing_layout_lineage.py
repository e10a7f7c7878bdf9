"""core.signing, core.layout and core.lineage: signatures, artifact names and lineage metadata."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from core import layout, signing
from core.errors import ArtifactRejected
from core.lineage import LISTED_OBJECTS_BYTES, Lineage, Provenance, Trigger
from core.signing import Keyring
from tests import keys

DIGEST = hashlib.sha256(b"model").hexdigest()
VERSION = "20260101T000000000000Z"


def test_sha256_hex() -> None:
    assert signing.sha256_hex(b"model") == DIGEST


def test_a_signed_lineage_names_its_key_and_verifies_under_the_public_key_only() -> None:
    signed = lineage()
    assert signed.key_id == keys.SIGNER.key_id
    assert len(signed.signature) == 128
    assert signed.verifies(keys.READER)
    assert not signed.verifies(Keyring.of(trusted=[keys.OTHER.signer]))  # type: ignore[list-item]
    assert not replace(signed, key_id=keys.OTHER.signer.key_id).verifies(keys.OTHER)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "change",
    [
        {"version": "20260101T000000000001Z"},
        {"sha256": hashlib.sha256(b"tampered").hexdigest()},
        {"data_fingerprint": "0" * 64},
        {"metrics": {"accuracy": 1.0, "f1_macro": 0.96}},
        {"row_count": 151},
        {"classes": ["virginica", "versicolor", "setosa"]},
        {"trigger": "force"},
        {"data_objects": ["data/other.csv#1"]},
        {"data_to_publish_s": 0.5},
    ],
    ids=["version", "sha256", "data_fingerprint", "metrics", "row_count", "classes", "trigger", "objects", "delay"],
)
def test_patching_any_lineage_field_breaks_the_signature(change: dict[str, object]) -> None:
    assert not replace(lineage(), **change).verifies(keys.READER)  # type: ignore[arg-type]


def test_a_reader_keyring_cannot_sign_a_lineage() -> None:
    with pytest.raises(ValueError, match="no signing key"):
        lineage().signed_with(keys.READER)


def test_version_is_fixed_width_utc_and_sorts_like_time() -> None:
    base = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    moments = [base + timedelta(microseconds=n) for n in (0, 1, 999_999, 10**6, 10**9)]
    moments += [base + timedelta(days=400), datetime(2026, 1, 2, 4, 4, 5, 6, tzinfo=timezone(timedelta(hours=1)))]
    versions = [layout.format_version(m) for m in moments]
    assert layout.format_version(base) == "20260102T030405000006Z"
    assert {len(v) for v in versions} == {22}
    assert sorted(versions) == [layout.format_version(m) for m in sorted(moments)]
    assert [layout.version_time(v) for v in versions] == [m.astimezone(UTC) for m in moments]


def test_model_object_and_version_parsing_round_trip() -> None:
    name = layout.model_object(VERSION)
    assert name == f"models/model-{VERSION}.pkl"
    assert layout.model_version(name) == VERSION


@pytest.mark.parametrize(
    "name",
    [
        "models/model-latest.pkl",
        "models/model-20260101T000000Z.pkl",
        "models/claims/abc.json",
        f"data/model-{VERSION}.pkl",
        f"models/model-{VERSION}.pkl.tmp",
        f"models/sub/model-{VERSION}.pkl",
    ],
)
def test_names_that_are_not_artifacts(name: str) -> None:
    assert layout.model_version(name) is None


def test_prefixes() -> None:
    assert (layout.INCOMING, layout.DATA, layout.QUARANTINE, layout.MODELS) == (
        "incoming/",
        "data/",
        "quarantine/",
        "models/",
    )
    assert layout.CLAIMS.startswith(layout.MODELS)
    assert layout.model_version(layout.CLAIMS + "x.pkl") is None


def lineage() -> Lineage:
    return Lineage(
        version=VERSION,
        created_at="2026-01-01T00:00:00+00:00",
        sha256=DIGEST,
        signature="",
        sklearn_version="1.7.0",
        python_version="3.11.9",
        model_type="StandardScaler+LogisticRegression",
        data_fingerprint="f" * 64,
        row_count=150,
        metrics={"accuracy": 0.97, "f1_macro": 0.96},
        feature_names=["sepal_length", "sepal_width", "petal_length", "petal_width"],
        classes=["setosa", "versicolor", "virginica"],
        trigger="event",
        data_objects=["data/b.csv#2", "data/a.csv#1"],
        data_objects_total=2,
        data_to_publish_s=1.25,
    ).signed_with(keys.KEYRING)


def test_lineage_metadata_is_strings_and_round_trips() -> None:
    original = lineage()
    metadata = original.to_metadata()
    assert all(isinstance(v, str) for v in metadata.values())
    assert json.loads(metadata["metrics"]) == {"accuracy": 0.97, "f1_macro": 0.96}
    assert metadata["row_count"] == "150"
    assert Lineage.from_metadata(metadata, "n") == original
    assert original.as_dict()["classes"] == ["setosa", "versicolor", "virginica"]


@pytest.mark.parametrize("drop", ["signature", "sha256"])
def test_lineage_without_signature_is_unsigned(drop: str) -> None:
    metadata = lineage().to_metadata()
    del metadata[drop]
    with pytest.raises(ArtifactRejected) as info:
        Lineage.from_metadata(metadata, "models/x")
    assert (info.value.reason, info.value.name) == ("unsigned", "models/x")


@pytest.mark.parametrize("metadata", [None, {}, {"signature": ""}])
def test_no_metadata_is_unsigned(metadata: dict | None) -> None:
    with pytest.raises(ArtifactRejected) as info:
        Lineage.from_metadata(metadata, "n")
    assert info.value.reason == "unsigned"


@pytest.mark.parametrize(
    "change", [{"metrics": "{not json"}, {"row_count": "many"}, {"classes": ""}, {"model_type": None}]
)
def test_unreadable_lineage_is_bad_metadata(change: dict) -> None:
    metadata = lineage().to_metadata() | change
    metadata = {k: v for k, v in metadata.items() if v is not None}
    with pytest.raises(ArtifactRejected) as info:
        Lineage.from_metadata(metadata, "n")
    assert info.value.reason == "bad_metadata"
    assert info.value.as_dict()["error"]["details"] == {"reason": "bad_metadata", "artifact": "n"}
    assert info.value.status == 422


def test_lineage_is_immutable() -> None:
    value = lineage()
    assert replace(value, row_count=1).row_count == 1
    with pytest.raises(AttributeError):
        value.row_count = 1  # type: ignore[misc]


def test_provenance_lists_the_newest_objects_within_the_metadata_budget() -> None:
    names = tuple(f"data/{'x' * 200}-{i}.csv#{i}" for i in range(100))
    listed = Provenance(Trigger.EVENT, names).listed()
    assert listed == list(names[: len(listed)])
    assert 0 < len(listed) < 100
    assert len(json.dumps(listed)) <= LISTED_OBJECTS_BYTES
    assert Provenance(Trigger.EVENT, names[:3]).listed() == list(names[:3])


def test_provenance_delay_is_from_the_newest_finalize_and_unknown_without_one() -> None:
    finalized = datetime(2026, 1, 1, tzinfo=UTC)
    assert Provenance(Trigger.CRON, (), finalized).delay_to(finalized + timedelta(seconds=2.5)) == 2.5
    assert Provenance().delay_to(finalized) is None


def test_a_lineage_without_a_known_delay_round_trips() -> None:
    original = replace(lineage(), data_to_publish_s=None, data_objects=[], data_objects_total=0).signed_with(
        keys.KEYRING
    )
    assert Lineage.from_metadata(original.to_metadata(), "n") == original
    assert original.to_metadata()["data_to_publish_s"] == "null"


@pytest.mark.parametrize(
    ("field", "stored"),
    [
        ("row_count", "\u0661\u0665\u0660"),
        ("row_count", " 000150 "),
        ("row_count", "+150"),
        ("data_objects_total", "02"),
        ("metrics", '{"accuracy": 0.1, "accuracy": 0.97, "f1_macro": 0.96}'),
        ("metrics", '{"accuracy":0.97,"f1_macro":0.96}'),
        ("classes", '["setosa",  "versicolor", "virginica"]'),
        ("data_to_publish_s", "1.250"),
    ],
    ids=["arabic-indic", "spaced-zeros", "plus", "leading-zero", "duplicate-key", "compact-json", "spaces", "zero"],
)
def test_a_value_respelt_with_the_same_meaning_is_refused(field: str, stored: str) -> None:
    """Each of these parses to the signed value: the signature must cover the stored string, not a re-serialisation."""
    signed = lineage()
    metadata = signed.to_metadata() | {field: stored}
    with pytest.raises(ArtifactRejected) as info:
        Lineage.from_metadata(metadata, "n")
    assert info.value.reason == "bad_metadata"
    assert not keys.READER.verify(signed.key_id, Lineage.stored_signed_fields(metadata), signed.signature)


def test_the_signature_covers_the_exact_stored_strings() -> None:
    signed = lineage()
    spaced = " ".join(signed.signature[i : i + 2] for i in range(0, 128, 2))
    assert bytes.fromhex(spaced) == bytes.fromhex(signed.signature)  # what made a spaced signature verify before
    stored = Lineage.stored_signed_fields(signed.to_metadata())
    assert "signature" not in stored
    assert keys.READER.verify(signed.key_id, stored, signed.signature)
    assert not keys.READER.verify(signed.key_id, stored | {"row_count": "\u0661\u0665\u0660"}, signed.signature)


@pytest.mark.parametrize(
    "respell",
    [
        lambda s: " ".join(s[i : i + 2] for i in range(0, len(s), 2)),
        lambda s: s.upper(),
        lambda s: s + "\n",
        lambda s: " " + s,
        lambda s: s + "00",
        lambda s: s[:-2],
    ],
    ids=["spaced", "uppercase", "newline", "leading-space", "longer", "shorter"],
)
def test_only_lowercase_hex_of_the_exact_length_verifies(respell: Any) -> None:
    signed = lineage()
    assert not replace(signed, signature=respell(signed.signature)).verifies(keys.READER)
    hmac_key = signing.HmacKey(b"k" * 32)
    hmac_ring = Keyring.of(signer=hmac_key)
    hmac_signed = lineage().signed_with(hmac_ring)
    assert len(hmac_signed.signature) == signing.HMAC_SHA256_HEX_LENGTH
    assert hmac_signed.verifies(hmac_ring)
    assert not replace(hmac_signed, signature=respell(hmac_signed.signature)).verifies(hmac_ring)
