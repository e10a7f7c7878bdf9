"""The bucket as a serving process reads it: a ModelStore whose GCS client and keyring are built on first use."""

from __future__ import annotations

import threading

from google.cloud import storage

from core import gcs, signing
from core.store import ModelStore
from predictor.settings import PredictorSettings


class DeferredModelStore(ModelStore):
    """The bucket's ModelStore, with its GCS client and keyring built on first use: building a serving process
    touches neither the network nor the key files (a worker reads the bucket only for what the handover lacks)."""

    def __init__(self, settings: PredictorSettings) -> None:
        self._settings, self._lock = settings, threading.Lock()
        self._bucket: storage.Bucket | None = None
        self._keyring: signing.Keyring | None = None
        self.retry = gcs.retry(settings)  # ModelStore's other two attributes are the properties below
        self.limits = settings.artifact_limits()

    @property
    def bucket(self) -> storage.Bucket:
        with self._lock:
            if self._bucket is None:
                self._bucket = gcs.client(self._settings).bucket(self._settings.gcs_bucket)
            return self._bucket

    @bucket.setter
    def bucket(self, bucket: storage.Bucket) -> None:
        self._bucket = bucket

    @property
    def keyring(self) -> signing.Keyring:
        with self._lock:
            if self._keyring is None:
                self._keyring = self._settings.keyring()
            return self._keyring

    @keyring.setter
    def keyring(self, keyring: signing.Keyring) -> None:
        self._keyring = keyring
