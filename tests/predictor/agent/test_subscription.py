"""The model-events subscriber against the real Pub/Sub emulator and fake-gcs-server, in-process (no gunicorn)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import storage
from sklearn.pipeline import Pipeline

from core import layout
from core.store import ModelStore
from devstack import emulators
from devstack.emulators import PubsubTarget, Service
from predictor.agent import reconcile
from predictor.agent import subscription as events_module
from predictor.agent.subscription import ModelEvents
from predictor.lifecycle.registry import Registry
from predictor.settings import PredictorSettings
from tests.polling import wait_for
from tests.predictor.agent.subscription_fixtures import (
    notify,
    publish_model,
    registry_for,
    running,
    settings_from_env,
    subscriptions,
)

pytestmark = pytest.mark.integration

PROJECT, TOPIC = "test-project", "gcs-events"


@pytest.fixture
def settings(common_env: dict[str, str], pubsub_emulator: Service) -> PredictorSettings:
    return settings_from_env(common_env, pubsub_emulator_host=pubsub_emulator.host, reconcile_interval=300)


@pytest.fixture
def registry(settings: PredictorSettings) -> Registry:
    return registry_for(settings)


def finalize(settings: PredictorSettings, name: str, generation: int | str, **extra: str) -> dict[str, str]:
    """The attributes of a GCS OBJECT_FINALIZE notification."""
    attributes = {
        "bucketId": settings.gcs_bucket,
        "objectId": name,
        "objectGeneration": str(generation),
        "eventType": "OBJECT_FINALIZE",
        "payloadFormat": "JSON_API_V1",
    }
    return attributes | extra


def ignored_offers(registry: Registry) -> float:
    sample = registry.metrics.registry.get_sample_value(
        "predictor_model_swaps_total", {"trigger": "notification", "outcome": "ignored"}
    )
    return sample or 0.0


def test_notification_swaps_the_model_and_a_duplicate_is_dropped(
    settings: PredictorSettings, registry: Registry, store: ModelStore, fitted_model: Pipeline
) -> None:
    with running(ModelEvents(registry, settings, on_reconnect=lambda: None)) as events:
        started = time.monotonic()
        lineage = publish_model(store, fitted_model)
        waited = time.monotonic()
        wait_for(lambda: registry.version == lineage.version, 5, "the swap by notification")
        delay = time.monotonic() - waited
        print(f"\nswap latency (publish returned -> registry serving): {time.monotonic() - started:.3f} s")
        assert delay < 5
        swap = registry.history()[0]
        assert (swap.trigger, swap.outcome, swap.version) == ("notification", "swapped", lineage.version)

        name = layout.model_object(lineage.version)
        generation = store.ref(name).generation
        notify(settings.pubsub_emulator_host or "", PROJECT, TOPIC, b"{}", **finalize(settings, name, generation))
        wait_for(lambda: events.counts["duplicate"] == 1, 5, "the duplicate to be dropped")
        assert events.counts["offered"] == 1
        assert registry.version == lineage.version
        assert len(registry.history()) == 1


def test_older_and_repeated_notifications_never_change_the_served_version(
    settings: PredictorSettings, registry: Registry, store: ModelStore, fitted_model: Pipeline
) -> None:
    older, newer = publish_model(store, fitted_model), publish_model(store, fitted_model)
    assert registry.reconcile("startup") is not None
    assert registry.version == newer.version
    host = settings.pubsub_emulator_host or ""
    with running(ModelEvents(registry, settings, on_reconnect=lambda: None)) as events:
        for lineage in (older, newer, newer):
            name = layout.model_object(lineage.version)
            data = json.dumps({"name": name, "timeCreated": lineage.created_at}).encode()
            notify(host, PROJECT, TOPIC, data, **finalize(settings, name, store.ref(name).generation))
        wait_for(lambda: events.counts["offered"] + events.counts["duplicate"] == 3, 5, "three notifications")
        assert (events.counts["offered"], events.counts["duplicate"]) == (2, 1)
        assert ignored_offers(registry) == 2  # "older", then "already serving"; the repeat never reached it
        assert registry.version == newer.version
        assert [r.outcome for r in registry.history()] == ["swapped"]


def test_a_rate_limited_notification_asks_for_a_reconcile_that_serves_the_model(
    settings: PredictorSettings, store: ModelStore, fitted_model: Pipeline
) -> None:
    """Beyond NOTIFICATION_LOOKUP_RATE an offer makes no lookup; the subscriber asks the agent's scheduler for a
    reconcile soon, and that listing serves the artifact the notification named."""
    registry = registry_for(settings.model_copy(update={"notification_lookup_rate": 0.01}))  # one token, 100 s refill
    assert registry.notification_lookups is not None
    assert registry.notification_lookups.take()  # spent: none left
    sched = reconcile.scheduler()
    sched.start()
    asked: list[float] = []

    def soon() -> None:
        asked.append(time.monotonic())
        reconcile.run_soon(sched, registry, reconcile.RATE_LIMITED_DELAY_S)

    try:
        with running(ModelEvents(registry, settings, on_reconnect=lambda: None, on_rate_limited=soon)) as events:
            lineage = publish_model(store, fitted_model)
            wait_for(lambda: registry.version == lineage.version, 10, "the swap by the requested reconcile")
            assert events.counts["offered"] == 1
        assert len(asked) == 1
        assert [(r.trigger, r.outcome) for r in registry.history()] == [("reconcile", "swapped")]
        assert ignored_offers(registry) == 1  # the notification itself: rate_limited
    finally:
        sched.shutdown(wait=False)


def test_foreign_and_malformed_messages_are_acked_and_the_subscriber_keeps_working(
    settings: PredictorSettings,
    registry: Registry,
    store: ModelStore,
    storage_client: storage.Client,
    fitted_model: Pipeline,
) -> None:
    host = settings.pubsub_emulator_host or ""
    model_name = layout.model_object("20200101T000000000000Z")
    with running(ModelEvents(registry, settings, on_reconnect=lambda: None)) as events:
        notify(host, PROJECT, TOPIC, b"\xff\x00 not json")  # no attributes at all
        notify(host, PROJECT, TOPIC, b"", **finalize(settings, model_name, "12ab"))
        notify(host, PROJECT, TOPIC, b"", **finalize(settings, model_name, 1, eventType="OBJECT_DELETE"))
        notify(host, PROJECT, TOPIC, b"", **finalize(settings, model_name, 1, bucketId="another-bucket"))
        notify(host, PROJECT, TOPIC, b"", **finalize(settings, layout.CLAIMS + "x.json", 1))
        storage_client.bucket(settings.gcs_bucket).blob(layout.DATA + "iris.csv").upload_from_string("a,b\n")
        # A model name whose payload is garbage and whose object does not exist: offered, rejected, acked.
        notify(host, PROJECT, TOPIC, b"\xff{", **finalize(settings, model_name, 7))
        wait_for(lambda: events.counts.total() == 7, 5, "all seven messages to be settled")
        assert (events.counts["malformed"], events.counts["ignored"], events.counts["offered"]) == (2, 4, 1)
        assert registry.version is None
        rejected = registry.history()[0]
        assert (rejected.outcome, rejected.reason, rejected.trigger) == ("rejected", "not_found", "notification")

        lineage = publish_model(store, fitted_model)
        wait_for(lambda: registry.version == lineage.version, 5, "a swap after the bad messages")
        assert events.status()["connected"]
        assert events.counts["nacked"] == 0


def test_a_parsing_bug_acks_the_message_once_and_the_subscriber_keeps_working(
    settings: PredictorSettings,
    registry: Registry,
    store: ModelStore,
    fitted_model: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_parse = events_module.model_event

    def buggy_parse(attributes: Any, *args: Any) -> Any:
        if attributes.get("poison"):
            raise RuntimeError("bug in the parser")
        return real_parse(attributes, *args)

    monkeypatch.setattr(events_module, "model_event", buggy_parse)
    host = settings.pubsub_emulator_host or ""
    with running(ModelEvents(registry, settings, on_reconnect=lambda: None)) as events:
        notify(host, PROJECT, TOPIC, b"{}", **finalize(settings, layout.model_object("20200101T000000000000Z"), 1),
               poison="yes")  # fmt: skip
        wait_for(lambda: events.counts["unparsable"] == 1, 5, "the poison message to be settled")
        lineage = publish_model(store, fitted_model)
        wait_for(lambda: registry.version == lineage.version, 5, "a swap after the poison message")
        time.sleep(0.5)  # a nacked or unacked message would be redelivered at once by the emulator
        assert (events.counts["unparsable"], events.counts["nacked"]) == (1, 0)
        assert events.status()["connected"]
    logged = [r for r in caplog.records if "cannot parse" in r.getMessage()]
    assert len(logged) == 1
    assert getattr(logged[0], "attributes", {}).get("poison") == "yes"
    assert logged[0].exc_info is not None


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[tuple[Service, Service]]:
    """A Pub/Sub emulator and a fake-gcs-server of this test alone (the restart test kills the emulator)."""
    pubsub = emulators.start_pubsub_emulator(emulators.free_port(), tmp_path / "pubsub.log")
    if pubsub is None:
        pytest.skip("Pub/Sub emulator not installed")
    emulators.ensure_topic(pubsub.host, PROJECT, TOPIC)
    gcs = emulators.start_fake_gcs(
        emulators.free_port(), tmp_path / "gcs", tmp_path / "gcs.log", PubsubTarget(pubsub.host, PROJECT, TOPIC)
    )
    services = [pubsub, gcs]
    try:
        yield pubsub, gcs
    finally:
        for service in services:
            service.stop()


def own_registry(
    own_stack: tuple[Service, Service], common_env: dict[str, str], bucket: str, **overrides: Any
) -> tuple[PredictorSettings, Registry]:
    """A bucket of its own on `own_stack`, and the settings and registry of a pod using both emulators."""
    pubsub, gcs = own_stack
    emulators.ensure_bucket(gcs.host, PROJECT, bucket)
    settings = settings_from_env(
        common_env, gcs_bucket=bucket, storage_emulator_host=gcs.host, pubsub_emulator_host=pubsub.host, **overrides
    )
    return settings, registry_for(settings)


def test_resubscribes_after_an_emulator_restart(
    own_stack: tuple[Service, Service], common_env: dict[str, str], fitted_model: Pipeline, tmp_path: Path
) -> None:
    pubsub = own_stack[0]
    settings, registry = own_registry(own_stack, common_env, "restart-bucket", reconcile_interval=300)
    store = registry.store
    reconnects: list[float] = []
    with running(ModelEvents(registry, settings, lambda: reconnects.append(time.monotonic()))) as events:
        first = publish_model(store, fitted_model)
        wait_for(lambda: registry.version == first.version, 5, "the first swap")

        os.killpg(pubsub.process.pid, signal.SIGKILL)  # a crash: its own process group, started by this test
        pubsub.stop()  # reaps the group
        restarted = emulators.start_pubsub_emulator(pubsub.port, tmp_path / "pubsub-2.log")
        assert restarted is not None
        pubsub.process = restarted.process  # the fixture stops the new process
        up = time.monotonic()
        emulators.ensure_topic(pubsub.host, PROJECT, TOPIC)  # the restarted emulator is empty
        back = time.monotonic()

        wait_for(lambda: events.subscription in subscriptions(pubsub.host, PROJECT, TOPIC), 15, "resubscription")
        resubscribed = time.monotonic() - back
        second = publish_model(store, fitted_model)
        wait_for(lambda: registry.version == second.version, 15 - resubscribed, "a swap by notification")
        total = time.monotonic() - back
        print(
            f"\nemulator answering -> topic recreated {back - up:.2f} s; topic back -> subscription recreated "
            f"{resubscribed:.2f} s; topic back -> swap by notification {total:.2f} s"
        )
        assert registry.history()[0].trigger == "notification"
        assert reconnects, "no reconcile was asked for after the reconnect"
        assert reconnects[-1] >= up
        assert events.connects >= 2


def test_an_unavailable_store_is_nacked_after_one_offer_and_the_event_is_not_lost(
    own_stack: tuple[Service, Service], common_env: dict[str, str], fitted_model: Pipeline, tmp_path: Path
) -> None:
    """One retry owner per layer: GCS_RETRY_DEADLINE inside each store call, then Pub/Sub redelivery."""
    pubsub, gcs = own_stack
    settings, registry = own_registry(own_stack, common_env, "outage-bucket", gcs_retry_deadline=0.3)
    lineage = publish_model(registry.store, fitted_model)  # before the subscription exists: no event for it
    name = layout.model_object(lineage.version)
    generation = registry.store.ref(name).generation
    gcs.stop()

    def failed_offers() -> float:
        labels = {"trigger": "notification", "outcome": "failed"}
        return registry.metrics.registry.get_sample_value("predictor_model_swaps_total", labels) or 0.0

    with running(ModelEvents(registry, settings, lambda: None)) as events:
        notify(pubsub.host, PROJECT, TOPIC, b"{}", **finalize(settings, name, generation))
        started = time.monotonic()
        wait_for(lambda: events.counts["nacked"] >= 2, 10, "two nacks while the store is down")
        elapsed, attempts, nacks = time.monotonic() - started, failed_offers(), events.counts["nacked"]
        # Each delivery is one offer (its GCS calls retried for at most 0.3 s), then a nack: no loop around it.
        assert nacks <= attempts <= nacks + 1
        assert registry.version is None

        restarted = emulators.start_fake_gcs(gcs.port, tmp_path / "gcs", tmp_path / "gcs-2.log")
        gcs.process = restarted.process  # the fixture stops the new process
        wait_for(lambda: registry.version == lineage.version, 10, "the swap once the store is back")
        print(f"\n{attempts:.0f} failed offers and {nacks} nacks in {elapsed:.2f} s of outage")
        assert events.counts["offered"] == 1
        assert registry.history()[0].trigger == "notification"
