"""Fixtures of the ingest function tests: settings on the test's bucket, uploads and CloudEvents for them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.cloud import storage

from core import layout
from functions.settings import IngestSettings


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """ingest_upload installs the JSON log handler once per process; give other tests their root logger back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def settings(common_env: dict[str, str]) -> IngestSettings:
    """Explicit settings on this test's bucket (reject policy, the default limits)."""
    env: dict[str, Any] = {k.lower(): v for k, v in common_env.items()}
    return IngestSettings(**env)


@pytest.fixture
def bucket(storage_client: storage.Client, bucket_name: str) -> storage.Bucket:
    """This test's bucket, emptied of the trusted evaluation set (the function never reads eval/): the tests compare
    the whole bucket before and after an ingest."""
    bucket = storage_client.bucket(bucket_name)
    for blob in storage_client.list_blobs(bucket, prefix=layout.EVAL):
        blob.delete()
    return bucket


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch, common_env: dict[str, str]) -> Callable[..., None]:
    """Set the environment ingest_upload reads; keyword arguments add or override variables."""

    def apply(**extra: str) -> None:
        for key, value in {**common_env, **{k.upper(): v for k, v in extra.items()}}.items():
            monkeypatch.setenv(key, value)

    apply()
    return apply
