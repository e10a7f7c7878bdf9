"""Settings every deployable shares, read from environment variables (pydantic-settings)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import hosts, iris, signing

if TYPE_CHECKING:
    from core.unpickle import Limits

S = TypeVar("S", bound=BaseSettings)
AbsolutePath = Annotated[Path, AfterValidator(Path.absolute)]
"""A path setting, made absolute against the folder the process started in (children and nginx may not share it)."""


DRIFT_CLASS_FEATURE = "predicted_class"
"""The `feature` label of the predicted-class mix in the drift figures."""
DRIFT_WINDOW_ROWS = 500
DRIFT_MIN_ROWS = 200
DRIFT_THRESHOLD = 0.25
DRIFT_CLASS_THRESHOLD = 0.15


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
    missed_event_after: float = Field(30.0, gt=0)
    """Seconds after an object's creation by which its notification must have arrived; a listing that finds it
    without one counts a missed event, logs a warning and recycles the subscription's stream."""
    log_level: str = "INFO"
    """Python logging level name (logs are JSON lines with `severity`)."""
    allowed_hosts: str = hosts.ANY
    """Host headers the predictor and the function answer: comma-separated `name` (any port) or `name:port` (`[::1]`
    for IPv6; see core.hosts); any other gets 400 `host_not_allowed`. `*` answers any: production, where the Gateway
    and load balancer front the pods and Kubernetes probes send the pod IP as Host; the local stack sets
    `127.0.0.1,localhost,[::1]`."""

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts_parse(cls, value: str) -> str:
        hosts.parse(value)
        return value

    @property
    def host_entries(self) -> frozenset[str]:
        """ALLOWED_HOSTS parsed."""
        return hosts.parse(self.allowed_hosts)


class DriftSettings(BaseSettings):
    """How served traffic is compared with a model's training data (core.drift): window and thresholds.

    The defaults come from bench/drift_bench.py (bench/README.md, "Drift"): on replayed iris-like traffic they give
    no false alarm in 100 windows, and petal length shifted by +1.5 cm on a third of the traffic alarms in the
    first full window.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    drift_window_rows: int = Field(DRIFT_WINDOW_ROWS, ge=10, le=1_000_000)
    """Served rows compared with the reference: the newest ones (a sliding window)."""
    drift_min_rows: int = Field(DRIFT_MIN_ROWS, ge=1)
    """Fewer rows in the window give no verdict yet: no score (NaN) and drifted 0 for every feature."""
    drift_threshold: float = Field(DRIFT_THRESHOLD, gt=0, le=1)
    """Jensen-Shannon distance (base 2, 0..1) above which a feature has drifted."""
    drift_class_threshold: float = Field(DRIFT_CLASS_THRESHOLD, gt=0, le=1)
    """L-infinity distance (largest difference of class shares, 0..1) of the predicted-class mix from the training
    data's class priors above which the mix has drifted."""
    drift_thresholds: dict[str, float] = Field(default_factory=dict)
    """Per-feature overrides of the two thresholds, JSON: `{"petal_length": 0.3, "predicted_class": 0.2}`."""

    @field_validator("drift_thresholds")
    @classmethod
    def _known_features(cls, value: dict[str, float]) -> dict[str, float]:
        known = (*iris.FEATURES, DRIFT_CLASS_FEATURE)
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown features {unknown}; known: {', '.join(known)}")
        bad = sorted(k for k, v in value.items() if not 0 < v <= 1)
        if bad:
            raise ValueError(f"thresholds must be in (0, 1]: {bad}")
        return value

    @model_validator(mode="after")
    def _min_within_window(self) -> DriftSettings:
        if self.drift_min_rows > self.drift_window_rows:
            raise ValueError("DRIFT_MIN_ROWS must not exceed DRIFT_WINDOW_ROWS")
        return self

    def threshold(self, feature: str) -> float:
        """The threshold of `feature` (a feature of core.iris or DRIFT_CLASS_FEATURE)."""
        default = self.drift_class_threshold if feature == DRIFT_CLASS_FEATURE else self.drift_threshold
        return self.drift_thresholds.get(feature, default)


class TrustSettings(CommonSettings):
    """Which artifact signatures a reader accepts: Ed25519 public keys by key id, or the HMAC option's shared key."""

    model_signing_algorithm: Literal["ed25519", "hmac-sha256"] = "ed25519"
    """`ed25519` (the trainer holds the private key, readers only public keys) or the `hmac-sha256` option."""
    model_public_keys_dir: Path | None = None
    """Folder of trusted Ed25519 public keys (`*.pem`, the mounted Secret `iris-model-public-keys`), each accepted
    under its own key id; required in the predictor with ed25519."""
    model_signing_key: SecretStr | None = None
    """Shared HMAC-SHA256 key, only with MODEL_SIGNING_ALGORITHM=hmac-sha256 (or MODEL_SIGNING_KEY_FILE)."""
    model_signing_key_file: Path | None = None
    """File holding the shared HMAC key (a mounted Secret); with hmac-sha256 one of it and MODEL_SIGNING_KEY is
    required."""
    pinned_model_version: str | None = None
    """Version the fleet serves exactly (predictor) and the trainer never marks for deletion (iris-common)."""
    model_max_bytes: int = Field(1024 * 1024, ge=64 * 1024)
    """Largest model artifact a reader downloads or unpickles, in bytes (`too_large` beyond; the trainer's is about
    5 KB with its training sample)."""
    model_max_array_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    """Largest single array an artifact may allocate while unpickling (object arrays are refused at any size)."""

    @model_validator(mode="after")
    def _keys_present(self) -> TrustSettings:
        if self.model_signing_algorithm == signing.HMAC_SHA256:
            self._hmac_key()
        else:
            if self.model_signing_key is not None or self.model_signing_key_file is not None:
                raise ValueError("MODEL_SIGNING_KEY(_FILE) is the hmac-sha256 option's: set MODEL_SIGNING_ALGORITHM")
            self.keyring()
        return self

    def artifact_limits(self) -> Limits:
        """The size caps every artifact is loaded under."""
        from core.unpickle import Limits  # NumPy only in the processes that load models

        return Limits(self.model_max_bytes, self.model_max_array_bytes)

    def _hmac_key(self) -> signing.HmacKey:
        if self.model_signing_key is not None:
            return signing.HmacKey(self.model_signing_key.get_secret_value().encode())
        if self.model_signing_key_file is None:
            raise ValueError("MODEL_SIGNING_KEY or MODEL_SIGNING_KEY_FILE must be set (hmac-sha256)")
        if not self.model_signing_key_file.is_file():
            raise ValueError(f"MODEL_SIGNING_KEY_FILE: no such file {self.model_signing_key_file}")
        return signing.HmacKey(self.model_signing_key_file.read_bytes().rstrip(b"\r\n"))

    def _public_keys(self) -> list[signing.Verifier]:
        folder = self.model_public_keys_dir
        if folder is None:
            return []
        if not folder.is_dir():
            raise ValueError(f"MODEL_PUBLIC_KEYS_DIR: no such folder {folder}")
        keys: list[signing.Verifier] = []
        for path in sorted(folder.glob("*.pem")):
            try:
                keys.append(signing.load_verifier(path.read_bytes()))
            except ValueError as e:
                raise ValueError(f"MODEL_PUBLIC_KEYS_DIR: {path.name}: {e}") from e
        return keys

    def keyring(self) -> signing.Keyring:
        """The trusted keys (ValueError when there are none)."""
        if self.model_signing_algorithm == signing.HMAC_SHA256:
            return signing.Keyring.of(trusted=[self._hmac_key()])
        keys = self._public_keys()
        if not keys:
            raise ValueError("MODEL_PUBLIC_KEYS_DIR must hold at least one Ed25519 public key (*.pem)")
        return signing.Keyring.of(trusted=keys)


class SignerSettings(TrustSettings):
    """Adds the key the trainer signs with; it verifies with MODEL_PUBLIC_KEYS_DIR (what predictors trust) if set."""

    model_signing_private_key_file: Path | None = None
    """Ed25519 private key (PEM, PKCS#8) the trainer signs with (the mounted Secret `iris-signing-key`); required
    with ed25519. Its own key is trusted only without MODEL_PUBLIC_KEYS_DIR."""

    def keyring(self) -> signing.Keyring:
        """The signing key, trusting MODEL_PUBLIC_KEYS_DIR when set, else only its own key (ValueError when missing).

        With the predictors' public keys, the trainer sees the models the fleet accepts, and an artifact signed by a
        key they do not trust fails its own check after publishing.
        """
        if self.model_signing_algorithm == signing.HMAC_SHA256:
            key = self._hmac_key()
            return signing.Keyring.of(signer=key)
        path = self.model_signing_private_key_file
        if path is None:
            raise ValueError("MODEL_SIGNING_PRIVATE_KEY_FILE must be set (ed25519)")
        if not path.is_file():
            raise ValueError(f"MODEL_SIGNING_PRIVATE_KEY_FILE: no such file {path}")
        try:
            signer = signing.load_signer(path.read_bytes())
        except (ValueError, TypeError) as e:
            raise ValueError(f"MODEL_SIGNING_PRIVATE_KEY_FILE: {e}") from e
        public = self._public_keys()
        if not public:
            return signing.Keyring.of(signer=signer)
        return signing.Keyring({key.key_id: key for key in public}, signer)


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
