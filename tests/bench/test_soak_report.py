"""The soak benchmark's verdicts: schedule, fault windows, failure split, p99 flatness, process and drop targets."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import soak_report as rep
from soak_report import Drop, Event, Fault, Proc


def test_faults_are_placed_at_their_share_of_the_run() -> None:
    faults = rep.parse_faults("worker:0.7,pubsub:0.3,agent:0.5", 1800)
    assert faults == [Fault("pubsub", 540), Fault("agent", 900), Fault("worker", 1260)]
    assert rep.parse_faults("none", 1800) == []


@pytest.mark.parametrize("spec", ["nginx:0.5", "agent:1.5", "agent:0", "agent"])
def test_bad_fault_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="fault"):
        rep.parse_faults(spec, 600)


def test_schedule_of_a_30_minute_run() -> None:
    events = rep.schedule(1800, 60, 300, rep.parse_faults(rep.DEFAULT_FAULTS, 1800))
    drops = [e.at for e in events if e.kind == "drop"]
    assert drops == [60.0 * i for i in range(1, 30)]  # every minute, none at the very end
    assert [e.at for e in events if e.kind == "bad"] == [330.0, 630.0, 930.0, 1230.0, 1530.0]
    assert [e.kind for e in events if e.kind not in ("drop", "bad")] == ["pubsub", "agent", "worker"]
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert all(e.at < 1800 for e in events)


def test_schedule_without_bad_csvs() -> None:
    assert rep.schedule(180, 60, 0, []) == [Event(60, "drop"), Event(120, "drop")]


def test_fault_windows() -> None:
    faults = [Fault("agent", 100), Fault("worker", 300)]
    assert rep.fault_at(95, faults, 10, 60) == "agent@100s"  # in flight when the fault hit
    assert rep.fault_at(160, faults, 10, 60) == "agent@100s"
    assert rep.fault_at(161, faults, 10, 60) == ""
    assert rep.fault_at(89, faults, 10, 60) == ""
    assert rep.fault_at(300, faults, 0, 60) == "worker@300s"


def test_failures_are_split_by_cause_and_kill_window() -> None:
    faults = [Fault("worker", 100)]
    failures = [
        (89.9, "http HTTP 502"),
        (99.9, "http HTTP 502"),
        (150, "grpc gRPC UNAVAILABLE"),
        (161, "http HTTP 502"),
    ]
    counts = rep.failure_counts(failures, faults, 10, 60)  # sent up to 10 s before the kill: in flight when it hit
    assert counts == {"grpc gRPC UNAVAILABLE": [0, 1], "http HTTP 502": [2, 1]}


def test_percentile_interpolates() -> None:
    assert rep.percentile([3, 1, 2, 4], 50) == 2.5
    assert rep.percentile([1.0] * 99 + [100.0], 99) == pytest.approx(1.99)
    assert math.isnan(rep.percentile([], 99))


@pytest.mark.parametrize(
    ("p99s", "flat"),
    [
        ([20, 25, 22, 30, 24, 21], True),
        ([20, 25, 22, 80, 24, 21], False),  # one window stands out
        ([10, 12, 14, 16, 18, 21], False),  # creeping up: last above 2x first
        ([20, float("nan"), 22], True),  # an empty window is no evidence
        ([50], True),
    ],
)
def test_p99_flatness(p99s: list[float], flat: bool) -> None:
    assert rep.p99_flat(p99s) is flat


@pytest.mark.parametrize(
    ("cmdline", "label"),
    [
        (["/w/.venv/bin/python", "-m", "trainer", "--watch"], "trainer --watch"),
        (["/w/.venv/bin/python", "-m", "predictor"], "predictor"),
        (["/w/.venv/bin/python", "-m", "functions_framework", "--source", "functions/main.py"], "function"),
        (["/usr/bin/java", "-jar", "/sdk/cloud-pubsub-emulator-0.8.jar", "--port=6000"], "pubsub-emulator"),
        (["python3", "/sdk/lib/gcloud.py", "beta", "emulators", "pubsub", "start"], "pubsub-emulator"),
        (["/bin/fake-gcs-server", "-event.pubsub-topic", "t"], "fake-gcs-server"),
        (["nginx: worker process"], "nginx worker"),
        ([], "?"),
    ],
)
def test_process_labels(cmdline: list[str], label: str) -> None:
    assert rep.label(cmdline) == label


def test_process_targets_judge_survivors_and_not_the_emulators() -> None:
    start = [
        Proc(1, "predictor worker", 100.0, 20, 6),
        Proc(2, "predictor.agent", 180.0, 14, 18),
        Proc(3, "pubsub-emulator", 150.0, 40, 30),
        Proc(4, "predictor worker", 100.0, 20, 6),
    ]
    end = [
        Proc(1, "predictor worker", 109.0, 22, 8),  # +9%, +2 files, +2 threads: within bounds
        Proc(3, "pubsub-emulator", 300.0, 90, 60),  # a JVM: shown, not judged
        Proc(4, "predictor worker", 100.0, 20, 6),
        Proc(5, "predictor.agent", 170.0, 14, 18),  # the agent was replaced: no verdict on growth
    ]
    rows, targets = rep.process_rows(start, end)
    assert all(t.ok for t in targets), targets
    assert [r[3] for r in rows] == ["109.0 (+9.0%)", "exited", "300.0 (+100.0%)", "100.0 (+0.0%)", "170.0"]
    assert rows[2][0] == "pubsub-emulator (not judged)"

    leaky = [Proc(1, "predictor worker", 111.0, 23, 9), *end[1:]]
    _, targets = rep.process_rows(start, leaky)
    assert [t.ok for t in targets] == [False, False, False]
    assert "predictor worker +11.0%" in targets[0].measured


def drop(name: str, at: float, seconds: float | None, triggers: set[str], in_fault: str = "") -> Drop:
    return Drop(name, at, seconds, "v", triggers, in_fault)


def test_drop_targets_pass() -> None:
    drops = [
        drop("a", 60, 2.0, {"notification"}),
        drop("b", 120, 3.0, {"notification"}),
        drop("c", 180, 9.5, {"notification"}),
    ]
    drops.append(drop("d", 240, 45.0, {"reconcile"}, in_fault="agent@235s"))  # during a fault: reported, not judged
    targets = rep.drop_targets(drops)
    assert [t.ok for t in targets] == [True, True, True, True]
    assert targets[1].measured == "3.00 s"


def test_drop_targets_fail_on_the_reconcile_a_slow_drop_and_a_lost_one() -> None:
    drops = [
        drop("a", 60, 2.0, {"notification"}),
        drop("b", 120, 45.0, {"reconcile"}),
        drop("c", 180, 3.0, {"notification"}),
    ]
    targets = rep.drop_targets(drops)
    assert [t.ok for t in targets] == [False, True, False, True]
    assert "not: b" in targets[0].measured

    lost = rep.drop_targets([drop("a", 60, 2.0, {"notification"}), drop("b", 120, None, set(), "agent@110s")])
    assert [t.ok for t in lost] == [True, True, True, False]
    assert "never: b" in lost[3].measured


def test_no_drop_outside_the_faults_is_no_pass() -> None:
    assert not rep.drop_targets([drop("a", 60, 2.0, {"notification"}, "pubsub@55s")])[0].ok


def test_markdown_table() -> None:
    assert rep.markdown(["a", "b"], [["1", "2"]], right=(1,)) == "| a | b |\n|---|---:|\n| 1 | 2 |"
