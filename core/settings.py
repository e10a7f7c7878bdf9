"""Settings every deployable shares, read from environment variables (pydantic-settings)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)


class CommonSettings(BaseSettings):
    """Where the bucket and the event topic live; the emulator hosts switch the clients to loopback."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    google_cloud_project: str = Field("local-project", min_length=1)
    """GCP project id (Pub/Sub topic and subscriptions live here)."""
    gcs_bucket: str = Field("iris-models", min_length=3)
    """The one bucket: incoming/, data/, quarantine/, models/."""
    storage_emulator_host: str | None = None
    """host:port of a GCS emulator (fake-gcs-server); unset in GCP."""
    pubsub_emulator_host: str | None = None
    """host:port of the Pub/Sub emulator; unset in GCP."""
    model_events_topic: str = "model-events"
    """Topic that receives the bucket's OBJECT_FINALIZE notifications for models/."""
    data_events_topic: str = "data-events"
    """Topic that receives the bucket's OBJECT_FINALIZE notifications for data/ (the same topic locally)."""
    gcs_retry_deadline: float = Field(30.0, gt=0)
    """Seconds google-api-core keeps retrying a transient GCS error before giving up."""
    log_level: str = "INFO"
    """Python logging level name."""


class SigningSettings(CommonSettings):
    """Adds the HMAC key that signs (trainer) or verifies (predictor) model artifacts."""

    model_signing_key: SecretStr | None = None
    """HMAC-SHA256 key for model artifacts (or use MODEL_SIGNING_KEY_FILE)."""
    model_signing_key_file: Path | None = None
    """File holding the signing key (a mounted Secret in Kubernetes)."""

    @model_validator(mode="after")
    def _key_present(self) -> SigningSettings:
        if self.model_signing_key is None and self.model_signing_key_file is None:
            raise ValueError("MODEL_SIGNING_KEY or MODEL_SIGNING_KEY_FILE must be set")
        if self.model_signing_key_file is not None and not self.model_signing_key_file.is_file():
            raise ValueError(f"MODEL_SIGNING_KEY_FILE: no such file {self.model_signing_key_file}")
        return self

    def signing_key(self) -> bytes:
        """The key bytes, from the variable or the file (trailing newline stripped)."""
        if self.model_signing_key is not None:
            return self.model_signing_key.get_secret_value().encode()
        assert self.model_signing_key_file is not None
        return self.model_signing_key_file.read_bytes().rstrip(b"\r\n")


def describe_error(error: ValidationError) -> str:
    """One line naming each offending environment variable."""
    parts = []
    for item in error.errors():
        name = "_".join(str(p) for p in item["loc"]).upper() or "settings"
        parts.append(f"{name}: {item['msg']}")
    return "configuration error: " + "; ".join(parts)


def load(cls: type[S]) -> S:
    """Build settings from the environment or exit with one clear line (status 2)."""
    try:
        return cls()
    except ValidationError as e:
        print(describe_error(e), file=sys.stderr)
        raise SystemExit(2) from e
