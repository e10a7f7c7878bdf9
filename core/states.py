"""Every state the project names: what started a run or a swap, how it ended, and why an artifact was refused.

They are metric labels, lineage fields and API values, so each set is defined once, here. StrEnum members are
their values (`SwapOutcome.SWAPPED == "swapped"`), so records read back from JSON compare equal to them.
"""

from __future__ import annotations

from enum import StrEnum


class Trigger(StrEnum):
    """What started the run that trained an artifact."""

    EVENT = "event"
    """New data under data/ (`python -m trainer --watch`)."""
    CRON = "cron"
    """The CronJob, or `python -m trainer --schedule` locally."""
    FORCE = "force"
    """`python -m trainer --force`: retrain the same data."""
    RECONCILE = "reconcile"
    """The watcher's catch-up run at start and after its subscription was recreated (events may have been missed)."""
    MANUAL = "manual"
    """A one-off `python -m trainer`, or a model published directly."""


class RunOutcome(StrEnum):
    """A trainer run's `status`: the first three settle the data it saw; `busy` and `failed` ask for another try."""

    PUBLISHED = "published"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    BUSY = "busy"
    """Another run holds a live claim on the same data; ask again once it has finished or gone stale."""
    FAILED = "failed"

    @property
    def settled(self) -> bool:
        return self in (RunOutcome.PUBLISHED, RunOutcome.SKIPPED, RunOutcome.REJECTED)


class SwapTrigger(StrEnum):
    """What offered an artifact to a predictor's registry."""

    STARTUP = "startup"
    NOTIFICATION = "notification"
    RECONCILE = "reconcile"
    ADMIN = "admin"


class SwapOutcome(StrEnum):
    """What became of an offered artifact."""

    SWAPPED = "swapped"
    REJECTED = "rejected"
    """It failed verification (a RejectReason says why); the old model keeps serving."""
    IGNORED = "ignored"
    """Nothing to do (a SkipReason says why)."""
    FAILED = "failed"
    """An unexpected error while loading; the old model keeps serving."""


class SkipReason(StrEnum):
    """Why an offer was ignored."""

    NOT_A_MODEL = "not_a_model"
    ALREADY_REJECTED = "already_rejected"
    RATE_LIMITED = "rate_limited"
    """More notifications named unknown objects than NOTIFICATION_LOOKUP_RATE allows: a reconcile a second later
    finds the object if it is real."""
    ALREADY_SERVING = "already_serving"
    OLDER = "older"
    PINNED = "pinned"
    """Another version is pinned (PINNED_MODEL_VERSION or an admin pin)."""


class RejectReason(StrEnum):
    """Why an artifact was refused (ArtifactRejected.reason)."""

    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    VERSION_MISMATCH = "version_mismatch"
    HASH_MISMATCH = "hash_mismatch"
    UNPICKLE_FAILED = "unpickle_failed"
    SCHEMA_MISMATCH = "schema_mismatch"
    WARMUP_FAILED = "warmup_failed"
    NOT_FOUND = "not_found"
    BAD_METADATA = "bad_metadata"
    BAD_NAME = "bad_name"
    FUTURE_VERSION = "future_version"
    TOO_LARGE = "too_large"


class GateReason(StrEnum):
    """Why the trusted evaluation set kept a candidate from being published (the run is `rejected`)."""

    EVAL_ACCURACY_FLOOR = "eval_accuracy_floor"
    """Its accuracy on the trusted set is below ACCURACY_FLOOR."""
    EVAL_ACCURACY_REGRESSION = "eval_accuracy_regression"
    """Its accuracy on the trusted set is more than EVAL_ACCURACY_TOLERANCE below the serving model's."""
    EVAL_RECALL_REGRESSION = "eval_recall_regression"
    """One class's recall on the trusted set is more than EVAL_RECALL_TOLERANCE below the serving model's."""
