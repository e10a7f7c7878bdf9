"""Check 1: the Pub/Sub emulator killed mid-load and restarted EMPTY on the same port.

Two pods on their own stack: `fast` reconciles every 5 s, `slow` every 300 s. A model published while Pub/Sub is
down must reach `fast` within one reconcile interval; `slow` catches up with the reconcile that follows its
resubscription. Each pod's model agent recreates its subscription on the new emulator, and a model published 15 s
after the restart (and after fake-gcs-server sends notifications again) reaches every worker of `slow` by
notification.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sklearn.pipeline import Pipeline

from core import layout
from tests.faults.load import running
from tests.faults.report import Row
from tests.faults.stack import Pod, Stack, start_stack
from tests.polling import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.e2e]
FAST_INTERVAL, SLOW_INTERVAL, WORKERS = 5, 300, 2
NOTIFY_TIMEOUT = 180.0
"""How long fake-gcs-server may take to send notifications again after the restart: its publisher channel can sit
in gRPC's reconnect backoff (capped at 120 s) and drop what it could not send meanwhile (measured 2-15 s, once over
150 s); Stack.notifications_flowing waits for it with probe objects before the pods are checked."""
NOTIFIED_WITHIN = 30.0
"""Once fake-gcs-server sends again, a model's notification must reach every worker of both pods within this."""
BACK_FOR = 15.0
"""Seconds after the restart at which the long outage's notification check publishes its model (the short one
publishes as soon as every subscription is back)."""


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory, fitted_model: Pipeline) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("faults-pubsub"))
    try:
        version = stack.store().publish(fitted_model, data_fingerprint="pubsub-0", row_count=150, metrics={}).version
        intervals = {"fast": str(FAST_INTERVAL), "slow": str(SLOW_INTERVAL)}
        stack.start_pods(["fast", "slow"], version, {k: {"RECONCILE_INTERVAL": v} for k, v in intervals.items()})
        yield stack
    finally:
        stack.stop()


def publish(stack: Stack, model: Pipeline, tag: str) -> tuple[str, float]:
    version = stack.store().publish(model, data_fingerprint=tag, row_count=150, metrics={}).version
    return version, time.monotonic()


def served_by(pod: Pod, version: str, since: float, timeout: float) -> float:
    """Seconds from `since` until every worker of `pod` serves `version`."""
    pod.wait_serving(version, timeout)
    return time.monotonic() - since


def sent_at(stack: Stack, version: str) -> float:
    """Epoch seconds at which fake-gcs-server logged sending the OBJECT_FINALIZE of `version`'s artifact."""
    needle = f"sent event OBJECT_FINALIZE for object {stack.bucket_name}/{layout.model_object(version)}#"
    for line in stack.emu.gcs.log_path.read_text(errors="replace").splitlines():
        if needle in line:
            return datetime.strptime(line.split()[0], "time=%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    raise AssertionError(f"fake-gcs-server never sent the notification of {version}")


def triggers(pod: Pod, version: str, tries: int = 12) -> set[str]:
    """How the workers we reach came to serve `version` (startup / notification / reconcile / admin)."""
    found = set()
    for _ in range(tries):
        info = pod.model()
        found |= {h["trigger"] for h in info["history"] if h["version"] == version and h["outcome"] == "swapped"}
    return found


def outage(stack: Stack, model: Pipeline, row: Row, down_for: float, back_for: float) -> None:
    """Pub/Sub down for `down_for` s, then a model published `back_for` s after the restart."""
    fast, slow = stack.pods
    subscriptions = stack.emu.subscriptions()
    assert len(subscriptions) == len(stack.pods)  # one per pod: the model agent's
    with running([fast.url, slow.url], threads=4, pause=0.05, max_seconds=down_for + 120) as load:
        try:
            stack.emu.stop_pubsub()
            down_at = time.monotonic()
            during, published = publish(stack, model, f"pubsub-down-{down_for}")
            fast_delay = served_by(fast, during, published, FAST_INTERVAL + 10)
            row.note(f"down {down_for:.0f} s; model published while down served by fast pod after {fast_delay:.1f} s "
                     f"(interval {FAST_INTERVAL} s)")  # fmt: skip
            time.sleep(max(0.0, down_for - (time.monotonic() - down_at)))
            stack.emu.restart_pubsub()
            back_at = time.monotonic()
            wait_for(lambda: stack.emu.subscriptions() == subscriptions, 30, "every subscription recreated")
            row.note(f"{len(subscriptions)} subscriptions recreated {time.monotonic() - back_at:.1f} s after restart")
            row.note(f"slow pod caught up {served_by(slow, during, back_at, 30):.1f} s after restart")
            stack.notifications_flowing(NOTIFY_TIMEOUT)
            row.note(f"fake-gcs-server's notifications flowing again {time.monotonic() - back_at:.1f} s after restart")
            time.sleep(max(0.0, back_for - (time.monotonic() - back_at)))
            wall, (after, published) = time.time(), publish(stack, model, f"pubsub-back-{down_for}")
            notified = [served_by(pod, after, published, NOTIFIED_WITHIN) for pod in (slow, fast)]
            sent = sent_at(stack, after) - wall
            slow_triggers = triggers(slow, after)
            row.note(f"model published {published - back_at:.0f} s after restart served by both pods in "
                     f"{max(notified):.1f} s by {'/'.join(sorted(slow_triggers))} (fake-gcs-server sent its "
                     f"notification {sent:.1f} s after the upload)")  # fmt: skip
        finally:
            load.stop()
            row.add_load(load.sent, len(load.failures()), load.versions())
    assert load.failures() == []
    assert fast_delay <= FAST_INTERVAL + 10
    assert slow_triggers == {"notification"}
    assert all(pod.service.alive() for pod in stack.pods)


def test_pubsub_down_5s(outage_stack: Stack, fitted_model: Pipeline, row: Row) -> None:
    outage(outage_stack, fitted_model, row, 5.0, 0.0)


def test_pubsub_down_90s_beyond_gcs_publish_retry(outage_stack: Stack, fitted_model: Pipeline, row: Row) -> None:
    outage(outage_stack, fitted_model, row, 90.0, BACK_FOR)
