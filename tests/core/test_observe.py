"""core.observe's missed-event bookkeeping: which listed objects are expected on the stream, and when one is missed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from core.observe import Heartbeat, Key, StreamHealth


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def test_only_objects_created_after_the_stream_opened_and_never_announced_are_missed() -> None:
    recycled: list[list[Key]] = []
    health = StreamHealth("test_stream", bound=0.2, on_missed=recycled.append)
    old, announced, unheard = ("b", "data/old.csv", 1), ("b", "data/heard.csv", 2), ("b", "data/unheard.csv", 3)
    health.found([(unheard, datetime.now(UTC))])  # before the stream opened: nothing is expected yet
    health.opened(first=True)
    time.sleep(0.01)
    health.delivered(announced)
    health.found([(old, ago(3600)), (announced, datetime.now(UTC)), (unheard, datetime.now(UTC))])
    assert health.check() == []  # not overdue yet
    time.sleep(0.25)
    assert health.check() == [unheard]
    assert recycled == [[unheard]]
    assert health.check() == []  # counted once
    assert health.registry.get_sample_value("test_stream_missed_events_total") == 1
    assert health.status()["recent_missed"] == ["data/unheard.csv#3"]
    health.found([(unheard, datetime.now(UTC))])  # listed again after it was counted: not counted twice
    time.sleep(0.25)
    assert health.check() == []


def test_a_late_notification_clears_the_expectation() -> None:
    health = StreamHealth("late_stream", bound=0.1)
    health.opened(first=True)
    key = ("b", "models/model-1.pkl", 5)
    health.found([(key, datetime.now(UTC))])
    health.delivered(key)
    time.sleep(0.15)
    assert health.check() == []
    health.opened(first=False)
    assert health.registry.get_sample_value("late_stream_resubscribes_total") == 1


def test_a_heartbeat_goes_stale() -> None:
    heartbeat = Heartbeat(stale_after=0.05)
    assert heartbeat.fresh()
    time.sleep(0.08)
    assert not heartbeat.fresh()
    heartbeat.beat()
    assert heartbeat.fresh()
