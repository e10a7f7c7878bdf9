"""Trainer settings (environment variables)."""

from __future__ import annotations

from pydantic import Field

from core.settings import SignerSettings


class TrainerSettings(SignerSettings):
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
    accuracy_floor: float = Field(0.9, ge=0, le=1)
    """A model scoring below this accuracy on held-out data is never published."""
    regression_tolerance: float = Field(0.02, ge=0, le=1)
    """A new model may score at most this much below the current one on the same held-out data."""
    regression_significance: float = Field(0.05, gt=0, le=1)
    """A regression also needs this one-sided McNemar p-value or less (one unlucky row in 40 is no regression)."""
    eval_accuracy_tolerance: float = Field(0.02, ge=0, le=1)
    """A new model may score at most this much below the serving one on the trusted evaluation set (eval/)."""
    eval_recall_tolerance: float = Field(0.06, ge=0, le=1)
    """... and each class's recall on that set may fall at most this much below the serving model's."""
    test_fraction: float = Field(0.2, gt=0, lt=1)
    """Share of rows held out for evaluation."""
    random_seed: int = 42
    """Seed for the split and the estimator."""
    claim_stale_after: float = Field(120.0, gt=0)
    """Seconds without renewal after which an unfinished claim may be taken over (a live run renews every quarter)."""
    max_csv_bytes: int = Field(512 * 1024 * 1024, gt=0)
    """Largest CSV file read from data/; larger ones are skipped with a report."""
    max_training_rows: int = Field(2_000_000, gt=0)
    """Most rows one run trains on (newest files first; the rest are skipped with a report), bounding its memory."""
