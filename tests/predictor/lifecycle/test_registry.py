"""Registry semantics against fake-gcs-server: never downgrade, dedupe, rejection keeps the old model, pin."""

from __future__ import annotations

import pickle
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sklearn.pipeline import Pipeline

from core import gcs, layout, signing
from core.errors import StoreUnavailable
from core.lineage import Lineage
from core.signing import Keyring
from core.store import ArtifactRef, LoadedModel, ModelStore
from predictor.lifecycle.registry import RateLimit, Recent, Registry
from predictor.settings import PredictorSettings
from tests.keys import KEYRING, OTHER, READER
from tests.predictor.conftest import publish

pytestmark = pytest.mark.integration


def tampered(store: ModelStore, model: Pipeline, how: str) -> str:
    """Upload a newer artifact that must be rejected for `how`; returns its object name."""
    data = pickle.dumps(model)
    version = layout.format_version(datetime.now(UTC))
    good = publish_metadata(version, signing.sha256_hex(data), KEYRING)
    if how == "hash_mismatch":
        data = data[:-8] + b"tampered"
    elif how == "bad_signature":
        good = publish_metadata(version, signing.sha256_hex(data), OTHER) | {"key_id": KEYRING.signer.key_id}
    elif how == "unsigned":
        good = {}
    blob = store.bucket.blob(layout.model_object(version))
    blob.metadata = good
    blob.upload_from_string(data)
    return blob.name


def publish_metadata(version: str, digest: str, key: Keyring) -> dict[str, str]:
    lineage = Lineage(
        version=version, created_at=datetime.now(UTC).isoformat(), sha256=digest,
        signature="", sklearn_version="x", python_version="x", model_type="x",
        data_fingerprint="x", row_count=1, metrics={}, feature_names=[], classes=[],
    )  # fmt: skip
    return lineage.signed_with(key).to_metadata()


def test_reconcile_loads_the_newest_and_never_downgrades(registry: Registry, store: ModelStore, fitted_model) -> None:
    assert registry.reconcile() is None
    assert not registry.ready
    old, new = publish(store, fitted_model), publish(store, fitted_model)
    record = registry.reconcile("startup")
    assert record is not None
    assert (record.outcome, record.version, record.trigger) == (
        "swapped",
        new.version,
        "startup",
    )
    assert registry.ready
    assert registry.version == new.version
    assert registry.loaded_trigger == "startup"
    older = registry.offer(layout.model_object(old.version), None, "notification")
    assert (older.outcome, older.reason, registry.version) == ("ignored", "older", new.version)
    assert registry.reconcile() is None


def test_offer_swaps_once_per_generation(registry: Registry, store: ModelStore, fitted_model) -> None:
    lineage = publish(store, fitted_model)
    ref = store.ref(layout.model_object(lineage.version))
    finalized = datetime.now(UTC) - timedelta(seconds=2)
    first = registry.offer(ref.name, ref.generation, "notification", finalized_at=finalized)
    again = registry.offer(ref.name, ref.generation, "notification")
    assert (first.outcome, again.outcome, again.reason) == ("swapped", "ignored", "already_serving")
    assert [r.outcome for r in registry.history()] == ["swapped"]
    text = registry.metrics.render().decode()
    assert "predictor_swap_latency_seconds_count 1.0" in text
    assert f'predictor_model_serving{{version="{lineage.version}"}} 1.0' in text


def test_offer_ignores_objects_that_are_not_artifacts(registry: Registry) -> None:
    record = registry.offer("models/claims/abc.json", 1, "notification")
    assert (record.outcome, record.reason) == ("ignored", "not_a_model")
    assert registry.history() == []


@pytest.mark.parametrize("how", ["hash_mismatch", "bad_signature", "unsigned"])
def test_rejected_artifact_keeps_the_old_model(registry: Registry, store: ModelStore, fitted_model, how: str) -> None:
    good = publish(store, fitted_model)
    registry.reconcile()
    name = tampered(store, fitted_model, how)
    record = registry.offer(name, None, "notification")
    assert (record.outcome, record.reason) == ("rejected", how)
    assert registry.version == good.version
    assert registry.history()[0] == record
    assert f'predictor_artifacts_rejected_total{{reason="{how}"}} 1.0' in registry.metrics.render().decode()
    generation = store.ref(name).generation
    assert registry.offer(name, generation, "notification").reason == "already_rejected"


def test_reconcile_falls_back_past_a_rejected_newest(registry: Registry, store: ModelStore, fitted_model) -> None:
    good = publish(store, fitted_model)
    tampered(store, fitted_model, "hash_mismatch")
    record = registry.reconcile()
    assert record is not None
    assert (record.outcome, record.version) == ("swapped", good.version)
    assert [r.outcome for r in registry.history()] == ["swapped", "rejected"]
    assert registry.reconcile() is None  # the rejected one is not downloaded again


def test_pin_serves_an_older_version_and_holds(registry: Registry, store: ModelStore, fitted_model) -> None:
    old, new = publish(store, fitted_model), publish(store, fitted_model)
    registry.reconcile()
    assert registry.pin(old.version).outcome == "swapped"
    assert (registry.version, registry.pinned) == (old.version, old.version)
    newest = publish(store, fitted_model)
    record = registry.offer(layout.model_object(newest.version), None, "notification")
    assert (record.outcome, record.reason) == ("ignored", "pinned")
    assert registry.history()[0] == record  # recorded, not swapped
    assert registry.reconcile() is None
    assert registry.version == old.version
    assert registry.pin(old.version).reason == "already_serving"
    unpinned = registry.unpin()
    assert unpinned is not None
    assert unpinned.version == newest.version
    assert registry.pinned is None
    assert new.version < newest.version


def test_pin_to_a_missing_version_changes_nothing(registry: Registry, store: ModelStore, fitted_model) -> None:
    good = publish(store, fitted_model)
    registry.reconcile()
    record = registry.pin("20200101T000000000000Z")
    assert (record.outcome, record.reason) == ("rejected", "not_found")
    assert (registry.version, registry.pinned) == (good.version, None)


def test_pinned_setting_loads_exactly_that_version(
    predictor_settings: PredictorSettings, store: ModelStore, fitted_model
) -> None:
    old = publish(store, fitted_model)
    publish(store, fitted_model)
    registry = Registry(store, predictor_settings.model_copy(update={"pinned_model_version": old.version}))
    record = registry.reconcile("startup")
    assert record is not None
    assert record.version == old.version
    assert registry.pinned == old.version


def test_concurrent_offers_load_once(registry: Registry, store: ModelStore, fitted_model) -> None:
    lineage = publish(store, fitted_model)
    ref = store.ref(layout.model_object(lineage.version))
    outcomes: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: outcomes.append(registry.offer(ref.name, ref.generation, "notification").outcome)
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ignored"] * 7 + ["swapped"]


def test_history_is_bounded_and_newest_first(registry: Registry, store: ModelStore, fitted_model) -> None:
    versions = [publish(store, fitted_model).version for _ in range(7)]
    for version in versions:
        registry.offer(layout.model_object(version), None, "notification")
    assert [r.version for r in registry.history()] == versions[::-1][:5]


def test_store_outage_propagates(predictor_settings: PredictorSettings) -> None:
    settings = predictor_settings.model_copy(update={"storage_emulator_host": "127.0.0.1:9", "gcs_retry_deadline": 0.5})
    client = gcs.client(settings)
    registry = Registry(ModelStore(client.bucket("nowhere"), READER, gcs.retry(settings)), settings)
    with pytest.raises(StoreUnavailable):
        registry.reconcile()
    with pytest.raises(StoreUnavailable):
        registry.offer(layout.model_object("20260101T000000000000Z"), 1, "notification")
    assert not registry.ready


def test_rejected_and_failed_records_carry_their_message(
    live_app, registry: Registry, store: ModelStore, fitted_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    rejected = registry.offer(tampered(store, fitted_model, "hash_mismatch"), None, "notification")
    assert rejected.message == "hash_mismatch: content does not match its signed SHA-256"
    lineage = publish(store, fitted_model)

    def broken(ref: object) -> None:
        raise ValueError("disk on fire")

    monkeypatch.setattr(store, "load", broken)
    failed = registry.offer(layout.model_object(lineage.version), None, "notification")
    assert (failed.outcome, failed.reason, failed.message) == ("failed", "ValueError", "ValueError: disk on fire")
    history = live_app.test_client().get("/v1/model").get_json()["history"]
    assert [(h["outcome"], h["message"]) for h in history] == [
        ("failed", "ValueError: disk on fire"),
        ("rejected", "hash_mismatch: content does not match its signed SHA-256"),
    ]
    monkeypatch.undo()
    swapped = registry.offer(layout.model_object(lineage.version), None, "notification")
    assert (swapped.outcome, swapped.message) == ("swapped", None)


def test_duration_covers_the_whole_load_for_every_trigger(registry: Registry, store: ModelStore, fitted_model) -> None:
    first = publish(store, fitted_model)
    records = [registry.reconcile("startup")]
    second = publish(store, fitted_model)
    records.append(registry.reconcile("reconcile"))
    third = publish(store, fitted_model)
    records.append(registry.offer(layout.model_object(third.version), None, "notification"))
    records.append(registry.pin(first.version))
    assert [(r.trigger, r.outcome, r.version) for r in records if r] == [
        ("startup", "swapped", first.version),
        ("reconcile", "swapped", second.version),
        ("notification", "swapped", third.version),
        ("admin", "swapped", first.version),
    ]
    print("\nswap durations:", {r.trigger: r.duration_s for r in records if r})
    assert all(r is not None and r.duration_s > 0 for r in records)


def test_duration_includes_download_and_checks(
    registry: Registry, store: ModelStore, fitted_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_load = store.load

    def slow_load(ref: ArtifactRef) -> LoadedModel:
        time.sleep(0.1)  # a slow download
        return real_load(ref)

    monkeypatch.setattr(store, "load", slow_load)
    publish(store, fitted_model)
    record = registry.reconcile("reconcile")
    assert record is not None
    assert record.outcome == "swapped"
    assert 0.1 <= record.duration_s < 5


def test_recent_keeps_the_last_added_keys_only() -> None:
    recent = Recent(3)
    for key in range(10):
        recent.add(key)
    recent.add(7)  # added again: the most recent now
    recent.add(10)
    assert len(recent) == 3
    assert [k for k in range(11) if k in recent] == [7, 9, 10]


def test_rate_limit_allows_a_burst_then_its_rate() -> None:
    now = [0.0]
    limit = RateLimit(5.0, clock=lambda: now[0])
    assert [limit.take() for _ in range(7)] == [True] * 5 + [False] * 2
    now[0] += 0.2
    assert [limit.take(), limit.take()] == [True, False]
    now[0] += 100
    assert sum(limit.take() for _ in range(10)) == 5


def test_a_flood_of_forged_notifications_is_bounded_in_memory_and_lookups(
    predictor_settings: PredictorSettings, store: ModelStore, fitted_model: Pipeline
) -> None:
    """Forged notifications name objects that do not exist: each costs at most one lookup within
    NOTIFICATION_LOOKUP_RATE, is remembered among at most REFUSED_CACHE_SIZE missing pairs, and never pushes a real
    refusal out; a real artifact announced after the flood still swaps."""
    settings = predictor_settings.model_copy(update={"refused_cache_size": 8, "notification_lookup_rate": 5.0})
    registry = Registry(store, settings)
    lookups: list[str] = []
    real_ref = store.ref

    def counted(name: str, generation: int | None = None) -> ArtifactRef:
        lookups.append(name)
        return real_ref(name, generation)

    store.ref = counted  # type: ignore[method-assign]
    good = publish(store, fitted_model)
    registry.reconcile()
    bad = tampered(store, fitted_model, "hash_mismatch")
    bad_generation = store.bucket.get_blob(bad).generation
    assert registry.offer(bad, bad_generation, "notification").reason == "hash_mismatch"
    lookups.clear()
    started = time.monotonic()
    outcomes = []
    for i in range(500):  # ~130 bytes each on the wire: names of versions newer than the serving one
        name = layout.model_object(later(good.version, i + 1))
        outcomes.append(registry.offer(name, 1_000_000 + i, "notification").reason)
    elapsed = time.monotonic() - started
    assert len(lookups) <= 5 + 5 * elapsed + 1
    assert outcomes.count("rate_limited") >= 500 - len(lookups)
    assert len(registry._missing) <= 8
    assert len(registry._refused) == 1
    before = len(lookups)
    assert registry.offer(bad, bad_generation, "notification").reason == "already_rejected"
    assert len(lookups) == before  # the real refusal is still known: no lookup
    time.sleep(0.25)  # a token comes back
    newer = publish(store, fitted_model)
    record = registry.offer(layout.model_object(newer.version), None, "notification")
    assert (record.outcome, registry.version) == ("swapped", newer.version)


def later(version: str, microseconds: int) -> str:
    return layout.format_version(layout.version_time(version) + timedelta(microseconds=microseconds))
