"""One trainer run: fingerprint data/, skip if nothing changed, else train, gate, publish. Returns a summary."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from google.cloud import storage

from core import csvscan, drift, gcs, layout
from core.errors import ArtifactRejected, PublishUnverified, ServiceError
from core.lineage import Lineage, Trigger
from core.states import RunOutcome
from core.store import ArtifactRef, ModelStore
from trainer import claims, data, evalset, influence
from trainer.settings import TrainerSettings

log = logging.getLogger(__name__)


def newest_signed(store: ModelStore) -> ArtifactRef | None:
    """The newest artifact whose metadata signature verifies (no download)."""
    for ref in reversed(store.list_versions()):
        try:
            store.verify_metadata(ref)
            return ref
        except ArtifactRejected:
            continue
    return None


def train_once(settings: TrainerSettings, force: bool = False, trigger: Trigger | None = None) -> dict[str, Any]:
    """Run the trainer once; the summary's `status` is a RunOutcome (never `failed`: that is an exception)."""
    client = gcs.client(settings)
    try:
        return _run(client, settings, force, trigger or (Trigger.FORCE if force else Trigger.MANUAL))
    finally:
        client.close()  # its pooled connections: the watcher runs many times in one process


def _run(client: storage.Client, settings: TrainerSettings, force: bool, trigger: Trigger) -> dict[str, Any]:
    bucket, retry = client.bucket(settings.gcs_bucket), gcs.retry(settings)
    store = ModelStore(bucket, settings.keyring(), retry, settings.artifact_limits())
    blobs = data.list_csvs(bucket, retry)
    if not blobs:  # re-list even when another run seeded first
        if data.seed_iris_csv(bucket, retry):
            log.info("seeded data/iris.csv from scikit-learn's bundled iris data")
        blobs = data.list_csvs(bucket, retry)
    fp = data.fingerprint(blobs)
    summary: dict[str, Any] = {"data_fingerprint": fp, "files": len(blobs), "trigger": trigger.value}
    newest = newest_signed(store)
    if not force and newest is not None and newest.metadata.get("data_fingerprint") == fp:
        return summary | {"status": RunOutcome.SKIPPED, "reason": "no new data", "model_version": newest.version}
    claim = None if force else claims.acquire(bucket, fp, settings.claim_stale_after, retry)
    if isinstance(claim, claims.Refused):
        return summary | {"status": RunOutcome.BUSY if claim.busy else RunOutcome.SKIPPED, "reason": claim.reason}
    renewal = claim.kept_alive(settings.claim_stale_after / 4, retry) if claim else contextlib.nullcontext()
    try:
        with renewal:
            result = _train(store, blobs, fp, settings, trigger)
    except Exception as e:
        if claim:
            claim.finish("failed", retry, error=str(e)[:500])
        raise
    if claim:
        claim.finish(result["status"], retry, version=result.get("model_version"), reason=result.get("reason"))
    return summary | result


def _train(store: ModelStore, blobs: list[Any], fp: str, settings: TrainerSettings, trigger: Trigger) -> dict[str, Any]:
    from trainer import model  # scikit-learn is imported only when there is work

    trusted = evalset.load_trusted(store.bucket, store.keyring, store.retry)  # none: the run fails, untrained
    limits = csvscan.Limits(max_bytes=settings.max_csv_bytes, max_rows=settings.max_training_rows)
    current = store.newest_valid(on_reject=_log_reject)
    reading = data.read_files(blobs, limits, store.retry, settings.max_run_bytes, settings.max_training_rows)
    selection = influence.select(reading.files, current.model if current else None, settings)
    influence.announce(
        store.bucket, reading.files, selection, current.version if current else None, settings, store.retry
    )
    dataset = data.assemble(reading, selection)
    stats: dict[str, Any] = {
        "rows": dataset.rows,
        "feedback_rows": dataset.feedback_rows,
        **reading.summary(),
        **selection.summary(reading.files),
        "file_reports": dataset.reports,
    }
    if current is not None and selection.excluded and _learned_already(current.lineage, dataset, trigger):
        nothing_new = "nothing new to learn: the new data files were excluded"
        return stats | {"status": RunOutcome.SKIPPED, "reason": nothing_new, "model_version": current.version}
    try:
        evaluated = model.fit_and_evaluate(dataset, settings)
    except model.InsufficientData as e:
        return stats | {"status": RunOutcome.REJECTED, "reason": str(e)}
    reason = model.gate(evaluated, current.model if current else None, settings)
    if reason:
        return stats | {"status": RunOutcome.REJECTED, "reason": reason, "metrics": evaluated.metrics}
    verdict = evalset.gate(evaluated.model, current.model if current else None, trusted, settings)
    stats |= verdict.summary()
    if verdict.message:
        return stats | {"status": RunOutcome.REJECTED, "reason": verdict.message, "metrics": evaluated.metrics}
    try:
        lineage = store.publish(
            evaluated.model,
            data_fingerprint=fp,
            row_count=dataset.rows,
            metrics=evaluated.metrics,
            provenance=dataset.provenance(trigger),
            evaluation=verdict.evaluation,
            reference=drift.Reference.of(dataset.features, dataset.labels).to_lineage(),
            feedback_rows=dataset.feedback_rows,
        )
    except ArtifactRejected as e:  # no predictor would accept it: the same checks ran on the pickled bytes
        reason = f"{e.reason}: {e.message}"
        return stats | {"status": RunOutcome.REJECTED, "reason": reason, "metrics": evaluated.metrics}
    _verify_published(store, lineage)
    _retire(store, lineage.version, keep=[v for v in (settings.pinned_model_version,) if v])
    return stats | {
        "status": RunOutcome.PUBLISHED,
        "model_version": lineage.version,
        "data_to_publish_s": lineage.data_to_publish_s,
        "object": layout.model_object(lineage.version),
        "metrics": evaluated.metrics,
    }


def _learned_already(lineage: Lineage, dataset: data.Dataset, trigger: Trigger) -> bool:
    """Whether the current model learned from exactly the objects and rows this run would train on."""
    objects = dataset.provenance(trigger).objects
    listed = lineage.data_objects == list(objects) and lineage.data_objects_total == len(objects)
    return listed and lineage.row_count == dataset.rows


def _verify_published(store: ModelStore, lineage: Lineage) -> None:
    """Read our artifact back with the keys predictors trust; a failure fails the run and retires nothing."""
    try:
        store.verify_published(lineage)
    except ArtifactRejected as e:
        name = layout.model_object(lineage.version)
        raise PublishUnverified(f"published {name} does not verify: {e.message}", e.details) from e


def _retire(store: ModelStore, version: str, keep: list[str]) -> None:
    """Mark superseded artifacts (except `keep`) for the lifecycle rule; a failure here never fails the run."""
    try:
        retired = store.retire_older(version, keep)
    except ServiceError as e:
        log.warning("could not mark superseded artifacts: %s", e)
        return
    if retired:
        log.info("marked superseded artifacts", extra={"retired": retired})
    for version in [v for v in keep if store.marked(v)]:  # marked before it was pinned: a mark is never undone
        name = layout.model_object(version)
        log.warning(
            "pinned %s will be deleted by the lifecycle rule: hold it (gcloud storage objects update "
            "gs://%s/%s --temporary-hold)",
            name,
            store.bucket.name,
            name,
        )


def _log_reject(ref: ArtifactRef, error: ArtifactRejected) -> None:
    log.warning("skipping invalid artifact %s: %s", ref.name, error.message, extra={"reason": error.reason})
