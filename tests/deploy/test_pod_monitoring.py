"""What the metrics scrapers read: every PodMonitoring names a real port of the pods it selects, /metrics, and the
network policies let the scrapers reach it; the Prometheus Operator component renders the same as PodMonitors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import BASE, base_resources, build_with_operator_component, find, kubectl
from tests.deploy.test_network_policies import SCRAPERS, admitted, pod_labels, selects

RESOURCES = base_resources()


def monitors() -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m["spec"] for m in RESOURCES if m["kind"] == "PodMonitoring"}


def container_ports(workload: str) -> dict[str, int]:
    deployment = find(RESOURCES, "Deployment", workload)
    pod = deployment["spec"]["template"]["spec"]
    containers = pod["containers"] + pod.get("initContainers", [])  # sidecars (the model agent) are init containers
    return {p["name"]: p["containerPort"] for c in containers for p in c.get("ports", []) if "name" in p}


def test_the_predictor_and_the_data_watcher_are_scraped_and_nothing_else() -> None:
    labels = pod_labels()
    scraped = {
        name: [workload for workload, pod in labels.items() if selects(spec["selector"], pod)]
        for name, spec in monitors().items()
    }
    assert scraped == {"iris-predictor": ["iris-predictor"], "iris-trainer-watch": ["iris-trainer-watch"]}


@pytest.mark.parametrize("workload", ["iris-predictor", "iris-trainer-watch"])
def test_each_endpoint_is_a_named_port_of_the_pod_the_scrapers_may_reach(workload: str) -> None:
    (endpoint,) = monitors()[workload]["endpoints"]
    assert endpoint["path"] == "/metrics"
    port = container_ports(workload)[endpoint["port"]]
    assert admitted(workload)[port] == SCRAPERS


SCRAPED_PREFIXES = {
    "predictor_": "iris-predictor", "trainer_watch_": "iris-trainer-watch", "trainer_feedback_": "iris-trainer-watch",
}  # fmt: skip
"""Metric prefix -> the monitored workload that exports it (the predictor's admin port carries the whole pod's
multiprocess metrics: gunicorn workers and model agent)."""


def alerted_metrics() -> set[str]:
    rules = yaml.safe_load((BASE / "alert-rules.yaml").read_text())
    names = set()
    for rule in (r for g in rules["spec"]["groups"] for r in g["rules"]):
        expr = re.sub(r"\{[^}]*\}|\b(by|on|without|ignoring)\s*\([^)]*\)", " ", rule["expr"])
        names |= {n for n in re.findall(r"\b[a-z][a-z0-9_]*\b", expr) if n not in PROMQL}
    return names


PROMQL = {
    "max",
    "min",
    "sum",
    "count",
    "rate",
    "increase",
    "histogram_quantile",
    "max_over_time",
    "le",
    "and",
    "unless",
}


def test_every_alerted_metric_comes_from_a_scraped_workload() -> None:
    metrics = alerted_metrics()
    assert "predictor_drift_detected" in metrics
    assert "trainer_watch_missed_events_total" in metrics
    for name in metrics:
        owners = [w for prefix, w in SCRAPED_PREFIXES.items() if name.startswith(prefix)]
        assert owners, f"{name}: no monitored workload exports it"
        assert owners[0] in monitors()


@pytest.mark.skipif(kubectl() is None, reason="kubectl (with its built-in kustomize) is not installed")
def test_the_prometheus_operator_component_renders_pod_monitors(tmp_path: Path) -> None:
    built = build_with_operator_component(tmp_path)
    assert not [d for d in built if d["kind"] == "PodMonitoring"]
    for name, spec in monitors().items():
        monitor = find(built, "PodMonitor", name)
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["spec"]["podMetricsEndpoints"] == spec["endpoints"]
        assert monitor["spec"]["selector"] == spec["selector"]
