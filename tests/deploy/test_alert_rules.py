"""k8s/base/alert-rules.yaml: `promtool check rules` and `promtool test rules` (every alert firing on input series
that should fire it and quiet on series that should not), and the Prometheus Operator's rendering of the same groups.

promtool is Debian's (`apt-get install prometheus`, which .ci/run installs); without it these tests skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry
from sklearn.datasets import load_iris

from core import observe
from core.drift import DriftGauges, DriftMonitor, Reference
from core.iris import CLASSES
from core.settings import DriftSettings
from devstack import emulators, prometheus
from tests.deploy.conftest import BASE, build_with_operator_component, find, kubectl, kustomize_build
from tests.polling import wait_for

PROMTOOL = prometheus.binary("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
WARNING, CRITICAL = {"severity": "warning"}, {"severity": "critical"}
IRIS = load_iris()


def missed_events(
    alert: str, counter: str, job: str, missing: str, quiet: tuple[int, str, str]
) -> list[dict[str, Any]]:
    """The two cases of a missed-events counter: `missing` (its values) fires at 5 minutes; `quiet` (minutes, values,
    why) must not."""
    series = f'{counter}{{job="{job}"}}'
    minutes, values, why = quiet
    return [
        case(f"{alert}: fires on a missed event", 5, {series: missing}, [{"job": job, **WARNING}]),
        case(f"{alert}: quiet {why}", minutes, {series: values}, []),
    ]


def case(name: str, minutes: int, series: dict[str, str], fires: list[dict[str, str]]) -> dict[str, Any]:
    """One promtool test: `series` (1-minute steps) evaluated at `minutes`; `fires` are the expected alerts' labels
    (empty: the alert must not fire)."""
    return {
        "name": name,
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "alert": name.split(":")[0],
        "eval_time": f"{minutes}m",
        "exp_alerts": [{"exp_labels": labels} for labels in fires],
    }


NAN = " ".join(["NaN"] * 21)
"""A gauge the agent set to NaN (promtool's series notation has no NaNxN)."""
LATENCY = 'predictor_request_duration_seconds_bucket{{route="{route}",status="200",le="{le}"}}'
CASES = [
    case("IrisDriftDetected: fires per drifted feature after 5 minutes", 7, {
        'predictor_drift_detected{feature="petal_length",instance="a"}': "1x10",
        'predictor_drift_detected{feature="petal_length",instance="b"}': "0x10",
        'predictor_drift_detected{feature="sepal_width",instance="a"}': "0x10",
    }, [{"feature": "petal_length", **WARNING}]),
    case("IrisDriftDetected: quiet on a flag shorter than 5 minutes", 7, {
        'predictor_drift_detected{feature="petal_length"}': "0 0 1 1 1 0 0 0 0 0",
        'predictor_drift_detected{feature="sepal_width"}': "0x10",
    }, []),
    case("IrisLiveAccuracyBelowFloor: fires for the version below its floor", 17, {
        'predictor_live_accuracy{version="v1"}': "0.8x20",
        'predictor_model_accuracy_floor{version="v1"}': "0.9x20",
        'predictor_live_accuracy{version="v2"}': "0.97x20",
        'predictor_model_accuracy_floor{version="v2"}': "0.9x20",
    }, [{"version": "v1", **CRITICAL}]),
    case("IrisLiveAccuracyBelowFloor: quiet above the floor and without a floor to compare with", 17, {
        'predictor_live_accuracy{version="v2"}': "0.95x20",
        'predictor_model_accuracy_floor{version="v2"}': "0.9x20",
        'predictor_live_accuracy{version="v3"}': "0.5x20",
    }, []),
    case("IrisLiveAccuracyBelowFloor: quiet where the agent set NaN (a version no longer exported or serving)", 17, {
        'predictor_live_accuracy{version="v1",pod="p1"}': NAN,
        'predictor_model_accuracy_floor{version="v1",pod="p1"}': "0.9x20",
        'predictor_live_accuracy{version="v2",pod="p1"}': "0.5x20",
        'predictor_model_accuracy_floor{version="v2",pod="p1"}': NAN,
    }, []),
    case("IrisLiveAccuracyBelowFloor: fires while one pod still serves the version (another's floor is NaN)", 17, {
        'predictor_live_accuracy{version="v1",pod="p1"}': "0.8x20",
        'predictor_live_accuracy{version="v1",pod="p2"}': "0.8x20",
        'predictor_model_accuracy_floor{version="v1",pod="p1"}': "0.9x20",
        'predictor_model_accuracy_floor{version="v1",pod="p2"}': NAN,
    }, [{"version": "v1", **CRITICAL}]),
    *missed_events("IrisModelEventsMissed", "predictor_agent_missed_events_total", "predictor", "0 0 0 1 1 1 1",
                   (25, "0 1 1x30", "once 15 minutes passed without one")),
    *missed_events("IrisDataEventsMissed", "trainer_watch_missed_events_total", "trainer-watch", "0 0 2 2 2 2 2",
                   (20, "4x30", "while none is missed")),
    case("IrisModelEventsDisconnected: fires after 10 minutes without a stream", 12, {
        'predictor_agent_subscription_connected{pod="p1"}': "0x20",
        'predictor_agent_subscription_connected{pod="p2"}': "1x20",
    }, [{"pod": "p1", **WARNING}]),
    case("IrisModelEventsDisconnected: quiet when the stream reopened within 10 minutes", 12, {
        'predictor_agent_subscription_connected{pod="p1"}': "1 1 1 1 0 0 0 0 0 0 0 0 1 1",
    }, []),
    case("IrisPodServingOlderModel: fires when workers lag for 5 minutes", 7, {
        'predictor_workers_behind{pod="p1"}': "2x10",
    }, [{"pod": "p1", **WARNING}]),
    case("IrisPodServingOlderModel: quiet when a swap caught up within 5 minutes", 7, {
        'predictor_workers_behind{pod="p1"}': "1 1 0 0 0 0 0 0 0 0",
    }, []),
    case("IrisPodBehindBucket: fires when a pod stays behind the bucket for 10 minutes", 12, {
        'predictor_agent_behind_bucket{pod="p1"}': "1x20",
        'predictor_agent_behind_bucket{pod="p2"}': "0x20",
    }, [{"pod": "p1", **WARNING}]),
    case("IrisPodBehindBucket: quiet when the swap came within 10 minutes, or 10 minutes have not passed", 12, {
        'predictor_agent_behind_bucket{pod="p1"}': "1 1 1 1 1 1 1 1 0x12",
        'predictor_agent_behind_bucket{pod="p2"}': "0 0 0 1x20",
    }, []),
    case("IrisFeedbackRefused: fires on refused feedback", 5, {
        'predictor_feedback_records_total{outcome="refused",pod="p1"}': "0 0 3 3 3 3",
        'predictor_feedback_records_total{outcome="accepted",pod="p1"}': "0 5 10 15 20 25",
    }, [WARNING]),
    case("IrisFeedbackRefused: quiet while every item is accepted", 5, {
        'predictor_feedback_records_total{outcome="refused",pod="p1"}': "0x6",
        'predictor_feedback_records_total{outcome="accepted",pod="p1"}': "0 5 10 15 20 25",
    }, []),
    case("IrisFeedbackJoinFailing: fires when every pass of 30 minutes failed", 40, {
        'trainer_feedback_passes_total{status="failed"}': "0+2x45",
        'trainer_feedback_passes_total{status="ok"}': "5x45",
    }, [WARNING]),
    case("IrisFeedbackJoinFailing: quiet when a pass succeeds between failures", 40, {
        'trainer_feedback_passes_total{status="failed"}': "0+2x45",
        'trainer_feedback_passes_total{status="ok"}': "5+1x45",
    }, []),
    case("IrisFleetServesDifferentModels: fires when pods disagree for 10 minutes", 12, {
        'predictor_model_serving{pod="p1",version="a"}': "2x20",
        'predictor_model_serving{pod="p2",version="b"}': "2x20",
    }, [WARNING]),
    case("IrisFleetServesDifferentModels: quiet when the old version's gauge is 0 everywhere", 12, {
        'predictor_model_serving{pod="p1",version="a"}': "2 2 0x20",
        'predictor_model_serving{pod="p1",version="b"}': "0 0 2x20",
        'predictor_model_serving{pod="p2",version="b"}': "2x20",
    }, []),
    case("IrisHighErrorRate: fires above 5% of 5xx", 12, {
        'predictor_requests_total{route="/api",status="200"}': "0+60x20",
        'predictor_requests_total{route="/api",status="500"}': "0+6x20",
    }, [CRITICAL]),
    case("IrisHighErrorRate: quiet at 1.6% of 5xx and on 4xx", 12, {
        'predictor_requests_total{route="/api",status="200"}': "0+60x20",
        'predictor_requests_total{route="/api",status="400"}': "0+30x20",
        'predictor_requests_total{route="/api",status="503"}': "0+1x20",
    }, []),
    case("IrisHighLatencyP99: fires when predictions take 250-500 ms", 17, {
        LATENCY.format(route="/api", le="0.1"): "0x20",
        LATENCY.format(route="/api", le="0.25"): "0x20",
        LATENCY.format(route="/api", le="0.5"): "0+60x20",
        LATENCY.format(route="/api", le="+Inf"): "0+60x20",
    }, [WARNING]),
    case("IrisHighLatencyP99: quiet on fast predictions and a slow route that is not one", 17, {
        LATENCY.format(route="/predict", le="0.1"): "0+60x20",
        LATENCY.format(route="/predict", le="0.25"): "0+60x20",
        LATENCY.format(route="/predict", le="0.5"): "0+60x20",
        LATENCY.format(route="/predict", le="+Inf"): "0+60x20",
        LATENCY.format(route="/metrics", le="0.1"): "0x20",
        LATENCY.format(route="/metrics", le="0.25"): "0x20",
        LATENCY.format(route="/metrics", le="0.5"): "0+60x20",
        LATENCY.format(route="/metrics", le="+Inf"): "0+60x20",
    }, []),
    case("IrisPredictionLogDropping: fires on dropped records", 4, {
        'predictor_prediction_log_records_total{outcome="dropped",pod="p1"}': "0 0 5 5 5 5",
        'predictor_prediction_log_records_total{outcome="sent",pod="p1"}': "0+100x5",
    }, [WARNING]),
    case("IrisPredictionLogDropping: quiet while records are sent, failed uploads retried", 4, {
        'predictor_prediction_log_records_total{outcome="dropped",pod="p1"}': "0x5",
        'predictor_prediction_log_records_total{outcome="failed",pod="p1"}': "0 3 3 3 3 3",
        'predictor_prediction_log_records_total{outcome="sent",pod="p1"}': "0+100x5",
    }, []),
]  # fmt: skip


def alert_names() -> set[str]:
    return {rule["alert"] for group in prometheus.rule_groups() for rule in group["rules"] if "alert" in rule}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    env = os.environ | {"TZ": "UTC"}
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def test_every_alert_has_a_case_that_fires_it_and_one_that_must_not() -> None:
    firing = {c["alert"] for c in CASES if c["exp_alerts"]}
    quiet = {c["alert"] for c in CASES if not c["exp_alerts"]}
    assert firing == quiet == alert_names()
    assert len(alert_names()) >= 9


@needs_promtool
def test_promtool_accepts_the_rule_groups_and_their_templates(tmp_path: Path) -> None:
    rules = prometheus.write_rule_file(tmp_path / "rules.yml")
    out = promtool("check", "rules", str(rules), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in prometheus.rule_groups())} rules found" in out.stdout


@needs_promtool
def test_promtool_unit_tests_every_alert_firing_and_quiet(tmp_path: Path) -> None:
    """The expected alerts compare labels; the annotations (templates promtool check rules parses) are left out of
    the unit file so each case states only what fires."""
    groups = [
        g | {"rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
        for g in prometheus.rule_groups()
    ]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    tests = [
        {
            "name": c["name"], "interval": c["interval"], "input_series": c["input_series"],
            "alert_rule_test": [{"eval_time": c["eval_time"], "alertname": c["alert"], "exp_alerts": c["exp_alerts"]}],
        }
        for c in CASES
    ]  # fmt: skip
    (tmp_path / "tests.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "tests": tests}))
    out = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@needs_promtool
def test_a_wrong_expectation_fails_promtool(tmp_path: Path) -> None:
    """The harness can fail: a quiet case expecting an alert is reported."""
    prometheus.write_rule_file(tmp_path / "rules.yml")
    wrong = CASES[1] | {"exp_alerts": [{"exp_labels": {"feature": "petal_length", **WARNING}}]}
    test = {
        "interval": wrong["interval"], "input_series": wrong["input_series"],
        "alert_rule_test": [{"eval_time": wrong["eval_time"], "alertname": wrong["alert"],
                             "exp_alerts": wrong["exp_alerts"]}],
    }  # fmt: skip
    (tmp_path / "tests.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "tests": [test]}))
    out = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert out.returncode != 0
    assert "IrisDriftDetected" in out.stdout + out.stderr


def test_the_rules_are_in_the_base_in_managed_prometheus_form() -> None:
    kust = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert "alert-rules.yaml" in kust["resources"]
    doc = yaml.safe_load((BASE / "alert-rules.yaml").read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.googleapis.com/v1", "Rules")


@pytest.mark.skipif(kubectl() is None, reason="kubectl (with its built-in kustomize) is not installed")
def test_the_prometheus_operator_component_renders_the_same_groups(tmp_path: Path) -> None:
    operator = find(build_with_operator_component(tmp_path), "PrometheusRule", "iris-alerts")
    managed = find(kustomize_build(BASE), "Rules", "iris-alerts")
    assert operator["apiVersion"] == "monitoring.coreos.com/v1"
    assert operator["spec"]["groups"] == managed["spec"]["groups"] == prometheus.rule_groups()


@pytest.mark.integration
@pytest.mark.timeout(180)
@pytest.mark.skipif(prometheus.binary() is None, reason="prometheus not installed (apt-get install prometheus)")
def test_the_drift_gauges_on_shifted_traffic_trip_the_drift_alert_in_a_real_prometheus(tmp_path: Path) -> None:
    """core.drift's own export, scraped by Debian's Prometheus with the manifest's rules: IrisDriftDetected goes
    pending for petal length alone (it fires 5 minutes later, which the promtool cases check)."""
    registry = CollectorRegistry()
    monitor = DriftMonitor(DriftSettings(), Reference.of(IRIS.data, [CLASSES[t] for t in IRIS.target]))
    rng = np.random.default_rng(0)
    rows = IRIS.data[rng.integers(0, 150, 500)] + rng.normal(0, 0.1, (500, 4))
    rows[rng.random(500) < 1 / 3, 2] += 1.5
    monitor.observe(rows, rng.integers(0, 3, 500))
    DriftGauges(registry).publish(monitor.evaluate())
    server = observe.serve("127.0.0.1", 0, lambda: (True, {}), registry, "drift")
    port = emulators.free_port()
    service = prometheus.start(
        port, [prometheus.Target("predictor", server.server_address[1])], tmp_path, tmp_path / "log"
    )
    assert service is not None
    try:

        def drift_alerts() -> list[dict[str, Any]]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=2) as response:
                alerts = json.loads(response.read())["data"]["alerts"]
            return [a for a in alerts if a["labels"]["alertname"] == "IrisDriftDetected"]

        alerts = wait_for(drift_alerts, 120, "IrisDriftDetected pending in Prometheus", interval=1.0)
        assert [(a["labels"]["feature"], a["state"]) for a in alerts] == [("petal_length", "pending")]
    finally:
        service.stop()
        server.shutdown()
        server.server_close()
