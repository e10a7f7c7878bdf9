"""deploy/build-rbac.yaml: the Cloud Build account can apply every kind the overlays render, in the namespace only,
and can never read a Secret or change RBAC."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.conftest import (
    K8S,
    KUBERNETES_VERSION,
    OVERLAYS,
    ROOT,
    kustomization,
    kustomize_build,
    load_yaml_docs,
)

RBAC = load_yaml_docs(ROOT / "deploy" / "build-rbac.yaml")
APPLY = {"get", "create", "patch"}
NAMESPACE = kustomization(K8S / "base")["namespace"]


IRREGULAR = {"Rules": "rules"}
"""Kinds whose resource name is not the rule below (Managed Prometheus' Rules kind is plural already)."""


def plural(kind: str) -> str:
    if kind in IRREGULAR:
        return IRREGULAR[kind]
    lower = kind.lower()
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + ("es" if lower.endswith("s") else "s")


def rules(kind: str) -> list[dict[str, Any]]:
    return [rule for doc in RBAC if doc["kind"] == kind for rule in doc["rules"]]


def allowed(group: str, resource: str) -> set[str]:
    return {
        verb
        for rule in rules("Role")
        if group in rule["apiGroups"] and resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_rbac_documents_are_valid_kubernetes() -> None:
    for doc in RBAC:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_kind_can_be_applied(overlay: str) -> None:
    for doc in kustomize_build(K8S / "overlays" / overlay):
        group = doc["apiVersion"].rsplit("/", 1)[0] if "/" in doc["apiVersion"] else ""
        if doc["kind"] == "Namespace":
            [rule] = rules("ClusterRole")
            assert rule["resourceNames"] == [doc["metadata"]["name"]] == [NAMESPACE]
            assert {"get", "patch"} <= set(rule["verbs"])
            continue
        assert doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE
        missing = APPLY - allowed(group, plural(doc["kind"]))
        assert not missing, f"{doc['kind']} ({group or 'core'}): add {sorted(missing)} to deploy/build-rbac.yaml"


def test_no_secret_no_rbac_no_wildcard_no_pod_exec() -> None:
    for kind in ("Role", "ClusterRole"):
        for rule in rules(kind):
            assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]
            assert "rbac.authorization.k8s.io" not in rule["apiGroups"]
            assert not {"secrets", "pods/exec", "pods/attach", "pods/portforward"} & set(rule["resources"])
            assert "escalate" not in rule["verbs"]
            assert "impersonate" not in rule["verbs"]
    assert allowed("", "pods") == {"get", "list", "watch"}  # pods come from the Deployments, never directly


def test_the_bindings_name_only_the_build_account() -> None:
    bindings = [doc for doc in RBAC if doc["kind"].endswith("Binding")]
    assert len(bindings) == 2
    for binding in bindings:
        assert binding["subjects"] == [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "BUILD_ACCOUNT"}
        ]
