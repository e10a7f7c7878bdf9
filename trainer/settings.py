"""Trainer settings (environment variables)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.settings import SignerSettings

DAY = 86400.0
PREFIX_PATTERN = r"^[a-z0-9][a-z0-9_\-/]*/$"


class FeedbackSettings(BaseSettings):
    """The feedback joiner (trainer.feedback): labelled predictions into training CSVs, and live accuracy."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    feedback_join_interval: float = Field(30.0, ge=0)
    """Seconds between the data watcher's joiner passes (`python -m trainer --watch`); 0 turns its timer off
    (`python -m trainer.feedback` still runs one pass)."""
    feedback_min_rows: int = Field(100, ge=1)
    """Joined rows the joiner collects before it writes them as one training CSV (each CSV is a data/ file and a
    training run): feedback arriving a few labels at a time retrains once per batch, not once per pass. The live
    accuracy counts every pass's rows at once."""
    feedback_max_delay: float = Field(3600.0, ge=0, le=DAY)
    """...or the seconds the oldest joined row waits for the batch to fill, whichever comes first."""
    feedback_join_wait: float = Field(600.0, ge=0)
    """Seconds after a feedback was received (or its file reached the bucket, if later) that its prediction may still
    be on its way (spooled, not shipped); a feedback whose prediction is not found by then is `unknown`, before that
    it stays pending."""
    feedback_max_age: float = Field(7 * DAY, gt=0, le=30 * DAY)
    """A feedback for a prediction older than this (at the feedback's time) is `late`; the joiner also reads only
    feedback files and ledgers of this window (plus a day). At most 30 days: ledgers are deleted after 35."""
    feedback_log_prefix: str = Field("feedback/", pattern=PREFIX_PATTERN)
    """Bucket prefix of the predictors' feedback files (`<prefix>date=YYYY-MM-DD/<pod>-<stem>.jsonl.gz`); the
    joiner's ledger (`<prefix>ledger/`) and the live accuracy document (`<prefix>accuracy.json`) live under it."""
    prediction_log_prefix: str = Field("predictions/", pattern=PREFIX_PATTERN)
    """Bucket prefix of the predictors' prediction log, where the joiner finds each feedback's prediction."""


class TrainerSettings(SignerSettings, FeedbackSettings):
    """One trainer run, or the scheduler that repeats it."""

    train_schedule: str = "0 * * * *"
    """Cron expression for `python -m trainer --schedule` (the safety-net CronJob's schedule in the cluster)."""
    watch_subscription: str = Field("trainer-data-events", min_length=3)
    """Subscription on DATA_EVENTS_TOPIC that `python -m trainer --watch` pulls (created if missing)."""
    train_quiet_period: float = Field(1.0, ge=0)
    """The watcher trains once no new data object arrived for this many seconds..."""
    train_max_delay: float = Field(10.0, gt=0)
    """... or this many seconds after the first one of a burst, whichever comes first."""
    train_retry_delay: int = Field(30, ge=0, le=600)
    """Seconds before a batch whose run failed, or found the data claimed by a live run, is tried again."""
    watch_health_port: int | None = Field(None, ge=1, le=65535)
    """Port of the watcher's /healthz (liveness: its loop's heartbeat) and /metrics listener; unset, none (9093 in the
    cluster)."""
    watch_health_host: str = "0.0.0.0"
    """Address of the WATCH_HEALTH_PORT listener."""
    watch_stale_after: float = Field(900.0, gt=0)
    """Seconds without a turn of the watcher's loop (a training run included) after which its liveness fails."""
    watch_audit_interval: float = Field(60.0, gt=0)
    """Seconds between the watcher's listings of data/ that find objects whose notification never arrived."""
    accuracy_floor: float = Field(0.9, ge=0, le=1)
    """A model scoring below this accuracy on held-out data is never published (when the shortfall is significant,
    FLOOR_SIGNIFICANCE), nor below it on the trusted evaluation set."""
    floor_significance: float = Field(0.05, gt=0, le=1)
    """A held-out accuracy below ACCURACY_FLOOR rejects the model when a one-sided exact binomial test gives this
    p-value or less: 30 of 34 rows right is no evidence the model is below 0.9 (1 in 18 random splits of the 150 iris
    flowers scores that low), 27 of 34 is. 1 rejects every shortfall."""
    regression_tolerance: float = Field(0.02, ge=0, le=1)
    """A new model may score at most this much below the current one on the same held-out data."""
    regression_significance: float = Field(0.05, gt=0, le=1)
    """A regression also needs this one-sided McNemar p-value or less (one unlucky row in 40 is no regression)."""
    eval_accuracy_tolerance: float = Field(0.02, ge=0, le=1)
    """A new model may score at most this much below the serving one on the trusted evaluation set (eval/)."""
    eval_recall_tolerance: float = Field(0.06, ge=0, le=1)
    """... and each class's recall on that set may fall at most this much below the serving model's (0.06: 3 flowers
    of iris's 50)."""
    test_fraction: float = Field(0.2, gt=0, lt=1)
    """Share of rows held out for evaluation."""
    random_seed: int = 42
    """Seed for the estimator (and the split's salt when SPLIT_SALT_PUBLIC=true)."""
    split_salt: SecretStr | None = None
    """Secret salt of the held-out split (or SPLIT_SALT_FILE): whoever knows it can tell which rows are held out."""
    split_salt_file: Path | None = None
    """File holding the split salt (key `split-salt` of the mounted Secret `iris-signing-key`); one of SPLIT_SALT and
    SPLIT_SALT_FILE is required unless SPLIT_SALT_PUBLIC=true."""
    split_salt_public: bool = False
    """Without SPLIT_SALT(_FILE) the trainer refuses to start unless this is true: then RANDOM_SEED is the salt."""
    claim_stale_after: float = Field(120.0, gt=0)
    """Seconds without renewal after which an unfinished claim may be taken over (a live run renews every quarter)."""
    max_csv_bytes: int = Field(512 * 1024 * 1024, gt=0)
    """Largest CSV file read from data/; larger ones are skipped with a report."""
    max_training_rows: int = Field(2_000_000, gt=0)
    """Most rows one run trains on, shared fairly across files (thinned evenly to one cap), bounding its memory
    (within the CronJob's 1 GiB)."""
    max_run_bytes: int = Field(256 * 1024 * 1024, gt=0)
    """Most bytes of data/ one run reads, shared fairly across files; the rest is not read (the summary says so)."""
    max_upload_share: float = Field(0.5, gt=0, le=1)
    """Largest share of the rows it joins (older files' and its own) one data/ file may hold; 1 turns this off."""
    contradiction_confidence: float = Field(0.7, gt=0.5, le=1)
    """A row is contradicted when the serving model gives another species at least this probability."""
    max_contradicted_share: float = Field(0.1, ge=0, le=1)
    """A data/ file with more than this share of contradicted rows is excluded from training (and reported)..."""
    min_contradicted_rows: int = Field(3, ge=1)
    """... when at least this many of its rows are contradicted."""
    max_label_mix_distance: float = Field(0.5, ge=0, le=1)
    """A data/ file whose species mix is further than this (total variation) from the older files' is excluded..."""
    min_label_mix_weight: float = Field(0.2, ge=0, le=1)
    """... and holds at least this share of the rows it joins (20 new flowers of one species move nothing)."""

    @model_validator(mode="after")
    def _salt_present(self) -> TrainerSettings:
        if self.split_salt is None and self.split_salt_file is None and not self.split_salt_public:
            raise ValueError(
                "SPLIT_SALT or SPLIT_SALT_FILE must be set (a secret salt for the held-out split); "
                "SPLIT_SALT_PUBLIC=true uses RANDOM_SEED instead, for experiments only"
            )
        if self.split_salt is None and self.split_salt_file is not None and not self.split_salt_file.is_file():
            raise ValueError(f"SPLIT_SALT_FILE: no such file {self.split_salt_file}")
        self.split_salt_value()
        return self

    def split_salt_value(self) -> int:
        """The split's 64-bit salt: from the secret (SHA-256 of it), else RANDOM_SEED when that was chosen."""
        if self.split_salt is not None:
            secret = self.split_salt.get_secret_value().encode()
        elif self.split_salt_file is not None:
            secret = self.split_salt_file.read_bytes().rstrip(b"\r\n")
        else:
            return self.random_seed
        if not secret:
            raise ValueError("SPLIT_SALT(_FILE): the split salt is empty")
        return int.from_bytes(hashlib.sha256(secret).digest()[:8], "big")
