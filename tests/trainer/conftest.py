"""Trainer test helpers: data generation, CSV upload and running `python -m trainer` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.cloud import storage
from sklearn.datasets import load_iris

from core import layout
from core.iris import CLASSES, FEATURES, LABEL
from trainer.settings import TrainerSettings

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class TrainerRun:
    """A finished `python -m trainer` subprocess."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def summary(self) -> dict[str, Any]:
        lines = self.stdout.strip().splitlines()
        assert len(lines) == 1, self.stdout
        result: dict[str, Any] = json.loads(lines[0])
        return result


def trainer_env(common_env: dict[str, str], **overrides: str) -> dict[str, str]:
    """The subprocess environment: this interpreter's, minus any ambient GCS/Pub/Sub settings, plus the test's."""
    names = {name.upper() for name in TrainerSettings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in names}
    return env | common_env | overrides


def start_trainer(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "trainer", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_trainer(env: dict[str, str], *args: str, timeout: float = 120) -> TrainerRun:
    started = time.monotonic()
    proc = start_trainer(env, *args)
    stdout, stderr = proc.communicate(timeout=timeout)
    return TrainerRun(proc.returncode, stdout, stderr, time.monotonic() - started)


def iris_rows(noise: float = 0.0, seed: int = 0, copies: int = 1) -> list[tuple[Sequence[float], str]]:
    """The bundled iris rows (repeated `copies` times), with a share `noise` of labels replaced at random."""
    iris = load_iris()
    rng = np.random.default_rng(seed)
    x = np.tile(iris.data, (copies, 1))
    y = np.tile(iris.target, copies)
    flip = rng.random(len(y)) < noise
    y = np.where(flip, rng.integers(0, 3, len(y)), y)
    return [(tuple(float(v) for v in row), CLASSES[t]) for row, t in zip(x, y, strict=True)]


def csv_text(rows: Iterable[tuple[Sequence[float], str]], header: Sequence[str] = (*FEATURES, LABEL)) -> bytes:
    lines = [",".join(header)] + [",".join([*(repr(v) for v in values), label]) for values, label in rows]
    return ("\n".join(lines) + "\n").encode()


def put(bucket: storage.Bucket, name: str, data: bytes) -> storage.Blob:
    blob = bucket.blob(name)
    blob.upload_from_string(data, content_type="text/csv")
    return blob


def model_names(bucket: storage.Bucket) -> list[str]:
    return sorted(b.name for b in bucket.list_blobs(prefix=layout.MODEL_PREFIX))


@pytest.fixture
def bucket(storage_client: storage.Client, bucket_name: str) -> storage.Bucket:
    return storage_client.bucket(bucket_name)


def configured(settings: TrainerSettings, **changes: Any) -> TrainerSettings:
    return settings.model_copy(update=changes)


def gate_only(settings: TrainerSettings, **changes: Any) -> TrainerSettings:
    """No file is excluded (trainer/influence.py): the quality gates alone must refuse bad data."""
    return configured(settings, max_contradicted_share=1.0, max_label_mix_distance=1.0, **changes)
