"""The trusted evaluation set on fake-gcs-server: the seeded set verifies, forged or unsigned sets are refused, a
run without a trusted set fails and writes nothing, the operator's CLI extends the set, and a candidate that loses
one class's recall on it is rejected while the lineage records the set's version and per-class figures."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from google.cloud import storage
from sklearn.datasets import load_iris

from core import layout, signing
from core.iris import CLASSES, EXAMPLES, FEATURES
from core.states import GateReason
from core.store import ModelStore
from tests import keys
from tests.trainer.conftest import ROOT, configured, csv_text, gate_only, model_names, put, run_trainer, trainer_env
from trainer import evalset
from trainer.run import train_once
from trainer.settings import TrainerSettings

pytestmark = pytest.mark.integration


def set_names(bucket: storage.Bucket) -> list[str]:
    return sorted(b.name for b in bucket.list_blobs(prefix=layout.EVAL))


def signed(keyring: signing.Keyring, data: bytes, version: str, rows: int) -> dict[str, str]:
    """The metadata the operator's CLI writes for `data` as set `version`."""
    assert keyring.signer is not None
    fields = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "sha256": signing.sha256_hex(data),
        "rows": str(rows),
        "key_id": keyring.signer.key_id,
    }
    return fields | {"signature": keyring.signer.sign(evalset.message(fields))}


def put_set(bucket: storage.Bucket, name: str, data: bytes, metadata: dict[str, str] | None) -> None:
    blob = bucket.blob(name)
    blob.metadata = metadata
    blob.upload_from_string(data, content_type="text/csv")


WRONG_FLOWERS = csv_text([(EXAMPLES["setosa"], "virginica"), (EXAMPLES["versicolor"], "setosa")] * 3
                         + [(EXAMPLES["virginica"], "versicolor")] * 3)  # fmt: skip
"""A forger's set: every flower under another class's name."""


def _unsigned(version: str) -> tuple[str, bytes, dict[str, str] | None]:
    return layout.eval_object(version), WRONG_FLOWERS, None


def _stranger(version: str) -> tuple[str, bytes, dict[str, str] | None]:
    return layout.eval_object(version), WRONG_FLOWERS, signed(keys.OTHER, WRONG_FLOWERS, version, 9)


def _swapped_content(version: str) -> tuple[str, bytes, dict[str, str] | None]:
    genuine = csv_text([(values, label) for label, values in EXAMPLES.items()] * 3)
    return layout.eval_object(version), WRONG_FLOWERS, signed(keys.KEYRING, genuine, version, 9)


def _model_purpose(version: str) -> tuple[str, bytes, dict[str, str] | None]:
    metadata = signed(keys.KEYRING, WRONG_FLOWERS, version, 9)
    fields = {k: metadata[k] for k in evalset.SIGNED_FIELDS}
    return layout.eval_object(version), WRONG_FLOWERS, fields | {"signature": keys.KEYRING.sign(fields)}


def _spaced_hex(version: str) -> tuple[str, bytes, dict[str, str] | None]:
    metadata = signed(keys.KEYRING, WRONG_FLOWERS, version, 9)
    return layout.eval_object(version), WRONG_FLOWERS, metadata | {"signature": " ".join(metadata["signature"])}


def _upper_hex(version: str) -> tuple[str, bytes, dict[str, str] | None]:
    metadata = signed(keys.KEYRING, WRONG_FLOWERS, version, 9)
    return layout.eval_object(version), WRONG_FLOWERS, metadata | {"signature": metadata["signature"].upper()}


def _renamed(version: str) -> tuple[str, bytes, dict[str, str] | None]:
    older = "20200101T000000000000Z"
    return layout.eval_object(version), WRONG_FLOWERS, signed(keys.KEYRING, WRONG_FLOWERS, older, 9)


FORGERIES: dict[str, tuple[Callable[[str], tuple[str, bytes, dict[str, str] | None]], str]] = {
    "unsigned": (_unsigned, "unsigned"),
    "signed by an untrusted key": (_stranger, "unknown_key"),
    "signed metadata on other content": (_swapped_content, "hash_mismatch"),
    "a model's signature (other purpose)": (_model_purpose, "bad_signature"),
    "spaced signature hex": (_spaced_hex, "bad_signature"),
    "upper-case signature hex": (_upper_hex, "bad_signature"),
    "signed for another version": (_renamed, "version_mismatch"),
}


def test_the_seeded_set_verifies(bucket: storage.Bucket, trainer_settings: TrainerSettings) -> None:
    trusted = evalset.load_trusted(bucket, trainer_settings.keyring(), None)
    assert set_names(bucket) == [layout.eval_object(trusted.version)]
    assert trusted.key_id == keys.SIGNER.key_id
    iris = load_iris()
    assert np.array_equal(trusted.features, iris.data)
    assert list(trusted.labels) == [CLASSES[t] for t in iris.target]


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_a_forged_newer_set_is_refused_for_the_trusted_one(
    forgery: str, bucket: storage.Bucket, trainer_settings: TrainerSettings, caplog: pytest.LogCaptureFixture
) -> None:
    seeded = evalset.load_trusted(bucket, trainer_settings.keyring(), None).version
    make, reason = FORGERIES[forgery]
    name, data, metadata = make(layout.format_version(datetime.now(UTC)))
    put_set(bucket, name, data, metadata)
    with caplog.at_level(logging.WARNING, logger="trainer.evalset"):
        trusted = evalset.load_trusted(bucket, trainer_settings.keyring(), None)
    assert trusted.version == seeded
    assert [r.reason for r in caplog.records if r.name == "trainer.evalset"] == [reason]


def test_without_a_trusted_set_the_run_fails_and_writes_nothing(
    bucket: storage.Bucket, common_env: dict[str, str]
) -> None:
    (seeded,) = set_names(bucket)
    bucket.blob(seeded).delete()
    for make, _ in (FORGERIES["unsigned"], FORGERIES["signed by an untrusted key"]):
        name, data, metadata = make(layout.format_version(datetime.now(UTC)))
        put_set(bucket, name, data, metadata)
    forged = set_names(bucket)
    run = run_trainer(trainer_env(common_env))
    assert run.returncode == 1
    assert run.summary["status"] == "failed"
    assert "no trusted evaluation set under eval/" in run.summary["error"]
    assert "unsigned" in run.summary["error"]
    assert "unknown_key" in run.summary["error"]
    assert "python -m trainer.evalset seed" in run.stderr
    assert set_names(bucket) == forged  # the trainer never writes a set
    assert model_names(bucket) == []


def evalset_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m trainer.evalset ARGS` as the operator runs it."""
    command = [sys.executable, "-m", "trainer.evalset", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_operator_extends_the_set(bucket: storage.Bucket, common_env: dict[str, str], tmp_path: Path) -> None:
    env = trainer_env(common_env)
    seeded = evalset.load_trusted(bucket, keys.READER, None)
    extra = tmp_path / "extra.csv"
    extra.write_bytes(csv_text([(values, label) for label, values in EXAMPLES.items()] * 2))
    result = evalset_cli(env, "publish", str(extra))
    assert result.returncode == 0, result.stderr
    extended = evalset.load_trusted(bucket, keys.READER, None)
    assert extended.version > seeded.version
    assert extended.rows == seeded.rows + 6
    assert json.loads(result.stdout) == {
        "status": "published",
        "version": extended.version,
        "rows": 156,
        "object": layout.eval_object(extended.version),
    }
    seed = evalset_cli(env, "seed")  # a verified set is never replaced by the seed
    assert json.loads(seed.stdout)["status"] == "exists"
    assert json.loads(evalset_cli(env, "show").stdout)["classes"] == {c: 52 for c in CLASSES}
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_text([(EXAMPLES["setosa"], "rose")]))
    refused = evalset_cli(env, "publish", str(bad))
    assert refused.returncode == 2
    assert "1 invalid rows" in refused.stderr
    assert evalset.load_trusted(bucket, keys.READER, None).version == extended.version


def look_alikes(share_flipped: float, seed: int = 3) -> list[tuple[tuple[float, ...], str]]:
    """250 real versicolor flowers with petal width >= 1.4, jittered by 0.02 cm, a share of them labelled virginica,
    and 30 copies of the warm-up versicolor under its true label: the label-flipping upload of the README."""
    iris = load_iris()
    versicolor = iris.data[(iris.target == 1) & (iris.data[:, 3] >= 1.4)]
    rng = np.random.default_rng(seed)
    flowers = versicolor[rng.integers(0, len(versicolor), 250)] + rng.uniform(-0.02, 0.02, (250, len(FEATURES)))
    flipped = int(250 * share_flipped)
    rows = [(tuple(float(round(v, 3)) for v in x), "virginica" if i < flipped else "versicolor")
            for i, x in enumerate(flowers)]  # fmt: skip
    return rows + [(EXAMPLES["versicolor"], "versicolor")] * 30


def test_a_class_recall_regression_is_rejected(
    bucket: storage.Bucket, store: ModelStore, trainer_settings: TrainerSettings
) -> None:
    settings = gate_only(trainer_settings, max_upload_share=1.0)  # the trusted set alone: no per-file bound
    first = train_once(settings)
    assert first["status"] == "published"
    put(bucket, "data/look-alikes.csv", csv_text(look_alikes(0.1)))  # passes the held-out gate and overall figures
    second = train_once(settings)
    assert second["status"] == "rejected", second
    assert second["reason"].startswith(f"{GateReason.EVAL_RECALL_REGRESSION}: "), second["reason"]
    served, candidate = second["evaluation_baseline"]["recall"], second["evaluation"]["recall"]
    worst = min(CLASSES, key=lambda c: candidate[c] - served[c])
    assert candidate[worst] < served[worst] - trainer_settings.eval_recall_tolerance
    assert f"{worst} recall {candidate[worst]:.4f}" in second["reason"]
    assert model_names(bucket) == [layout.model_object(first["model_version"])]
    loose = configured(settings, eval_recall_tolerance=1.0)
    assert train_once(loose, force=True)["status"] == "published"  # the same data passes with the check opened


def test_the_label_flipping_upload_is_rejected_by_the_trusted_set_alone(
    bucket: storage.Bucket, store: ModelStore, trainer_settings: TrainerSettings
) -> None:
    settings = gate_only(trainer_settings, max_upload_share=1.0)  # with per-file bounds the upload never gets here
    first = train_once(settings)
    put(bucket, "data/look-alikes.csv", csv_text(look_alikes(1.0)))
    second = train_once(settings)
    assert second["status"] == "rejected", second
    assert second["reason"].startswith("eval_"), second["reason"]
    assert second["evaluation"]["recall"]["versicolor"] < first["evaluation"]["recall"]["versicolor"] - 0.06
    loaded = store.newest_valid()
    assert loaded is not None
    assert loaded.version == first["model_version"]


def test_lineage_records_the_set_and_per_class_recall(
    bucket: storage.Bucket, store: ModelStore, trainer_settings: TrainerSettings
) -> None:
    trusted = evalset.load_trusted(bucket, keys.READER, None)
    first = train_once(trainer_settings)
    put(bucket, "data/more.csv", csv_text([(tuple(v + 0.01 for v in x), c) for c, x in EXAMPLES.items()] * 10))
    second = train_once(trainer_settings)
    assert second["status"] == "published", second
    assert second["evaluation_baseline"] == first["evaluation"]  # compared with the serving model on the same set
    loaded = store.newest_valid()
    assert loaded is not None
    evaluation = loaded.lineage.evaluation
    assert evaluation == second["evaluation"]
    assert evaluation["set"] == trusted.version
    assert evaluation["rows"] == 150
    assert set(evaluation["recall"]) == set(CLASSES)
    assert all(0.9 <= r <= 1 for r in evaluation["recall"].values())
    stored = bucket.get_blob(layout.model_object(loaded.version))
    assert stored is not None
    assert len(stored.metadata["evaluation"].encode()) < 160  # compact: custom metadata allows 8 KiB in all
