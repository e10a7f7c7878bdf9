"""Check 4: forged, duplicated, reordered and malformed notifications never move the served version backwards."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sklearn.pipeline import Pipeline

from core import layout
from devstack import emulators
from tests.faults.load import Load, running
from tests.faults.report import Row
from tests.faults.stack import PROJECT, Pod, Stack

pytestmark = [pytest.mark.faults, pytest.mark.e2e]
Message = tuple[bytes, dict[str, str]]


def finalize(bucket: str, name: str, generation: str, **extra: str) -> dict[str, str]:
    attrs = {"bucketId": bucket, "objectId": name, "objectGeneration": generation, "eventType": "OBJECT_FINALIZE",
             "payloadFormat": "JSON_API_V1", "eventTime": datetime.now(UTC).isoformat()}  # fmt: skip
    return attrs | extra


def resource(bucket: str, name: str, generation: int) -> bytes:
    return json.dumps({"bucket": bucket, "name": name, "generation": str(generation),
                       "timeCreated": datetime.now(UTC).isoformat()}).encode()  # fmt: skip


def forged(bucket: str, serving: tuple[str, int], older: tuple[str, int]) -> dict[str, list[Message]]:
    """Every kind of bad message, by kind; `serving` and `older` are (object, generation) of real artifacts."""
    (name, gen), (old_name, old_gen) = serving, older
    version = layout.model_version(name) or ""
    missing = layout.model_object(layout.format_version(layout.version_time(version) + timedelta(microseconds=1)))
    good = resource(bucket, name, gen)
    without = {k: v for k, v in finalize(bucket, name, str(gen)).items() if k != "objectGeneration"}
    return {
        "duplicated": [(good, finalize(bucket, name, str(gen)))] * 3,
        "reordered (older generation after newer)": [
            (resource(bucket, old_name, old_gen), finalize(bucket, old_name, str(old_gen)))
        ],
        "deleted objects": [
            (b"", finalize(bucket, missing, "1234567")),  # newer name, object never existed or was deleted
            (good, finalize(bucket, name, str(gen), eventType="OBJECT_DELETE")),
            (good, finalize(bucket, name, str(gen - 1))),  # an overwritten/deleted generation
        ],
        "non-model objects": [
            (b"{}", finalize(bucket, "data/iris.csv", "5")),
            (b"{}", finalize(bucket, "models/claims/abc.json", "5")),
            (b"{}", finalize(bucket, "models/model-latest.pkl", "5")),
            (b"{}", finalize(bucket, "incoming/x.csv", "5")),
            (good, finalize("another-bucket", missing, "5")),
            (b"{}", finalize(bucket, "models/" + "m" * 900 + "\u00e9.pkl", "5")),
        ],
        "malformed": [
            (good, without),
            (good, {}),
            (good, {"objectId": missing}),
            (good, finalize(bucket, missing, "abc")),
            (good, finalize(bucket, missing, "-1")),
            (good, finalize(bucket, missing, "1e3")),
            (good, finalize(bucket, missing, "9" * 40)),
            (good, finalize(bucket, missing, "\u00b2")),  # isdigit() but not int()
            (good, finalize(bucket, missing, "\uff11\uff12")),  # fullwidth digits
            (good, finalize(bucket, missing, "0")),
            (b"{not json", finalize(bucket, missing, "77")),
            (bytes(range(256)), finalize(bucket, missing, "78")),
            (b"[1, 2, 3]", finalize(bucket, missing, "79")),
            (json.dumps({"timeCreated": "yesterday"}).encode(), finalize(bucket, missing, "80")),
            (json.dumps({"timeCreated": 12}).encode(), finalize(bucket, missing, "81", payloadFormat="NONE")),
        ],
    }


def publish(stack: Stack, messages: list[Message]) -> None:
    with emulators.publisher_client(stack.emu.pubsub.host) as client:
        topic = client.topic_path(PROJECT, stack.emu.topic)
        for data, attributes in messages:
            client.publish(topic, data, **attributes).result(timeout=10)


def never_backwards(load: Load, since: dict[str, float]) -> list[str]:
    """Answers older than a version every worker already served (since[version] = when all served it)."""
    problems = []
    for answer in load.snapshot():
        newer = [v for v, t in since.items() if answer.started > t and (answer.header_version or "") < v]
        if newer:
            problems.append(f"{answer.header_version} after {newer} at {answer.started:.2f}")
    return problems


def test_forged_notifications_never_go_backwards(
    main_stack: Stack, pods: list[Pod], row: Row, fitted_model: Pipeline
) -> None:
    store, bucket = main_stack.store(), main_stack.bucket_name
    older = pods[0].model()
    since: dict[str, float] = {}
    offsets = {pod.name: pod.log_size() for pod in pods}
    with running([p.url for p in pods]) as load:
        first = store.publish(fitted_model, data_fingerprint="faults-events-1", row_count=150, metrics={}).version
        for pod in pods:
            pod.wait_serving(first, 60)
        since[first] = time.monotonic()
        ref = store.ref(layout.model_object(first))
        messages = forged(bucket, (ref.name, ref.generation), (older["object"], older["generation"]))
        for batch in messages.values():
            publish(main_stack, batch)
        time.sleep(1.0)  # let the forged messages reach every worker before the genuine one
        assert all(pod.served() == {first} for pod in pods)
        later = store.publish(fitted_model, data_fingerprint="faults-events-2", row_count=150, metrics={}).version
        delays = [pod.wait_serving(later, 60) for pod in pods]
        since[later] = time.monotonic()
        time.sleep(0.5)
        triggers = {pod.name: {pod.model()["loaded_trigger"] for _ in range(6)} for pod in pods}

    row.add_load(load.sent, len(load.failures()), load.versions())
    row.note(", ".join(f"{len(v)} {k}" for k, v in messages.items()))
    row.note(f"later genuine model served after {max(delays):.1f} s")
    assert load.failures() == []
    assert set(load.versions()) <= {older["model_version"], first, later}
    assert never_backwards(load, since) == []
    assert triggers == {pod.name: {"notification"} for pod in pods}
    assert all(pod.service.alive() for pod in pods)
    assert {pod.name: pod.log_errors(offsets[pod.name]) for pod in pods} == {pod.name: [] for pod in pods}
