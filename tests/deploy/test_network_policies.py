"""NetworkPolicies: deny by default; predictor and trainer pods reach only DNS, the metadata server and Google APIs."""

from __future__ import annotations

import ipaddress
from typing import Any

from tests.deploy.conftest import base_resources

RESOURCES = base_resources()
PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")]
GKE_SERVICE_RANGE = ipaddress.ip_network("34.118.224.0/20")
"""GKE's default range for ClusterIP Services: public-looking addresses inside the cluster."""


def policies() -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p["spec"] for p in RESOURCES if p["kind"] == "NetworkPolicy"}


def pod_labels() -> dict[str, dict[str, str]]:
    workloads = [d for d in RESOURCES if d["kind"] in ("Deployment", "CronJob")]
    templates = [d["spec"]["jobTemplate"]["spec"] if d["kind"] == "CronJob" else d["spec"] for d in workloads]
    return {
        w["metadata"]["name"]: t["template"]["metadata"]["labels"] for w, t in zip(workloads, templates, strict=True)
    }


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_everything_is_denied_unless_allowed() -> None:
    deny = policies()["default-deny"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


SCRAPERS = {"gmp-system", "monitoring"}
"""Namespaces of the metrics scrapers: Managed Service for Prometheus's collectors and a self-managed Prometheus."""


def admitted(pod: str) -> dict[int, set[str]]:
    """Port -> the namespaces every ingress rule selecting the pods of workload `pod` admits there."""
    ports: dict[int, set[str]] = {}
    for spec in policies().values():
        if "Ingress" not in spec["policyTypes"] or not selects(spec["podSelector"], pod_labels()[pod]):
            continue
        for rule in spec.get("ingress", []):
            namespaces = {
                peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                for peer in rule["from"]
                if "namespaceSelector" in peer
            }
            for port in rule["ports"]:
                ports.setdefault(port["port"], set()).update(namespaces)
    return ports


def test_trainer_pods_accept_no_connection_but_the_watchers_metrics_scrape() -> None:
    assert admitted("iris-trainer") == {}
    assert admitted("iris-trainer-watch") == {9093: SCRAPERS}
    assert selects(policies()["iris-predictor-ingress"]["podSelector"], pod_labels()["iris-predictor"])


def test_the_predictor_admin_port_admits_only_the_scrapers() -> None:
    assert admitted("iris-predictor")[9090] == SCRAPERS


def test_every_pod_talks_only_to_dns_metadata_and_google_apis() -> None:
    egress = policies()["iris-egress"]
    assert egress["policyTypes"] == ["Egress"]
    for name, labels in pod_labels().items():
        assert selects(egress["podSelector"], labels), name
    allowed = {}
    for rule in egress["egress"]:
        ports = tuple(sorted((p["protocol"], p["port"]) for p in rule["ports"]))
        allowed[ports] = rule["to"]
    assert set(allowed) == {(("TCP", 53), ("UDP", 53)), (("TCP", 80),), (("TCP", 988),), (("TCP", 443),)}
    dns = allowed[(("TCP", 53), ("UDP", 53))]
    assert {"k8s-app": "kube-dns"} in [peer.get("podSelector", {}).get("matchLabels") for peer in dns]
    assert allowed[(("TCP", 80),)] == [{"ipBlock": {"cidr": "169.254.169.254/32"}}]  # GKE metadata server
    (https,) = allowed[(("TCP", 443),)]
    assert https["ipBlock"]["cidr"] == "0.0.0.0/0"
    excluded = [ipaddress.ip_network(n) for n in https["ipBlock"]["except"]]
    assert all(any(p.subnet_of(e) for e in excluded) for p in PRIVATE), "HTTPS must not reach the VPC or the cluster"
    assert any(GKE_SERVICE_RANGE.subnet_of(e) for e in excluded), "HTTPS must not reach the cluster's Services"
