"""Prediction log settings (environment variables); the predictor's settings class can inherit them."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SPOOL_SUFFIX = "-predictions"
"""The default spool folder is the handover folder's name with this suffix, beside it."""
FEEDBACK_FOLDER = "feedback"
"""The default feedback spool folder: this subfolder of the prediction log's spool folder."""
WEEK = 7 * 24 * 3600.0


class PredictionLogSettings(BaseSettings):
    """What the serving processes log about each prediction, and how the pod's agent ships it to the bucket."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    prediction_log_enabled: bool = True
    """Every serving process records its answers and refusals; false: nothing is recorded (ids are still given)."""
    prediction_log_sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    """Share of requests recorded, decided by a hash of the request id (the same id is always in or always out)."""
    prediction_log_queue_size: int = Field(10_000, ge=1)
    """Records a serving process holds in memory for its writer thread; beyond, new records are dropped and counted."""
    prediction_log_dir: Path | None = None
    """Spool folder shared by the pod's serving processes (writers) and its agent (shipper), on local disk; unset:
    the handover folder's name plus `-predictions`, beside it (a pod mounts an emptyDir there)."""
    prediction_log_rotate_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    """A spool file is closed and handed to the shipper once it holds this many bytes."""
    prediction_log_rotate_seconds: float = Field(60.0, gt=0)
    """...or once its first record is this many seconds old (the longest a record waits before it can ship)."""
    prediction_log_max_spool_bytes: int = Field(64 * 1024 * 1024, ge=64 * 1024)
    """Most bytes of closed spool files kept while the bucket cannot take them; beyond, the oldest file is dropped and
    its records counted as dropped (the pod's emptyDir sizeLimit must leave room for this plus one open file per
    serving process)."""
    prediction_log_prefix: str = Field("predictions/", pattern=r"^[a-z0-9][a-z0-9_\-/]*/$")
    """Bucket prefix of the shipped files: `<prefix>date=YYYY-MM-DD/<pod>-<spool file>.jsonl.gz`."""
    prediction_log_batch_interval: float = Field(10.0, gt=0)
    """Seconds between the shipper's passes over the spool (each closed spool file becomes one object)."""
    prediction_log_retry_max: float = Field(60.0, gt=0)
    """Cap of the shipper's exponential backoff while the bucket refuses or cannot be reached."""
    feedback_log_dir: Path | None = None
    """Spool folder of accepted feedback (predictor.predlog.feedback), shared like PREDICTION_LOG_DIR; unset: the
    `feedback` subfolder of the prediction log's spool folder (never mixed with prediction files)."""
    feedback_log_prefix: str = Field("feedback/", pattern=r"^[a-z0-9][a-z0-9_\-/]*/$")
    """Bucket prefix of the shipped feedback files: `<prefix>date=YYYY-MM-DD/<pod>-<spool file>.jsonl.gz`."""
    feedback_queue_size: int = Field(10_000, ge=1)
    """Feedback records a serving process holds in memory for its writer thread; beyond, feedback items are answered
    503 `unavailable` (the client retries them), never dropped."""
    feedback_log_max_spool_bytes: int = Field(16 * 1024 * 1024, ge=64 * 1024)
    """Most bytes of closed feedback spool files kept while the bucket cannot take them; beyond, new feedback items
    are answered 503 `unavailable` until the shipper caught up (nothing accepted is dropped for room)."""
    feedback_max_items: int = Field(1000, ge=1)
    """Most feedback items in one POST /v1/feedback."""
    feedback_max_age: float = Field(WEEK, gt=0)
    """Seconds after a generated (UUIDv7) prediction id was issued until feedback for it is answered `late`."""

    def feedback_dir(self, handover_dir: Path) -> Path:
        """FEEDBACK_LOG_DIR, else the `feedback` subfolder of the prediction log's spool folder."""
        if self.feedback_log_dir is not None:
            return self.feedback_log_dir
        return self.spool_dir(handover_dir) / FEEDBACK_FOLDER

    def spool_dir(self, handover_dir: Path) -> Path:
        """PREDICTION_LOG_DIR, else the folder beside `handover_dir` named after it."""
        if self.prediction_log_dir is not None:
            return self.prediction_log_dir
        return handover_dir.with_name(handover_dir.name + SPOOL_SUFFIX)
