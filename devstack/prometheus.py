"""A real Prometheus for the local stack, with the manifests' alert rules: rule groups, configuration, start.

The alert rules live once, in k8s/base/alert-rules.yaml (the cluster's `Rules` object); ``rule_groups`` reads their
spec.groups, which is exactly a Prometheus rule file's content, so ``make run``'s Prometheus and ``promtool test
rules`` (tests/deploy/test_alert_rules.py) evaluate the groups the cluster does. Prometheus is Debian's
(``apt-get install prometheus``; ``.ci/run`` installs it when missing); without it the stack runs without one.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devstack.emulators import LOOPBACK, Service, _http_ok, _wait_ready, spawn

ROOT = Path(__file__).resolve().parents[1]
RULES_MANIFEST = ROOT / "k8s" / "base" / "alert-rules.yaml"
"""The one source of the alert rules."""
SCRAPE_INTERVAL = "5s"
"""Locally: a scrape and a rule evaluation every 5 s (the cluster's Rules evaluate every 30 s)."""


def binary(name: str = "prometheus") -> str | None:
    """`prometheus` or `promtool` from PATH or Debian's /usr/bin."""
    return shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/local/bin")


def rule_groups(manifest: Path = RULES_MANIFEST) -> list[dict[str, Any]]:
    """The rule groups of the alert-rules manifest (its spec.groups), as a Prometheus rule file holds them."""
    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d]
    if len(docs) != 1 or "groups" not in docs[0].get("spec", {}):
        raise ValueError(f"{manifest}: expected one rules object with spec.groups")
    groups: list[dict[str, Any]] = docs[0]["spec"]["groups"]
    return groups


def write_rule_file(path: Path, manifest: Path = RULES_MANIFEST) -> Path:
    """A Prometheus rule file with the manifest's groups at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"groups": rule_groups(manifest)}, sort_keys=False))
    return path


@dataclass(frozen=True)
class Target:
    """One scrape job: a name and the loopback port of its /metrics."""

    job: str
    port: int


def config(targets: list[Target], rule_file: Path) -> dict[str, Any]:
    """prometheus.yml: every target's /metrics on loopback, the rule file, 5 s intervals."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(rule_file)],
        "scrape_configs": [
            {"job_name": t.job, "metrics_path": "/metrics", "static_configs": [{"targets": [f"{LOOPBACK}:{t.port}"]}]}
            for t in targets
        ],
    }


def start(port: int, targets: list[Target], directory: Path, log_path: Path) -> Service | None:
    """Prometheus on 127.0.0.1:`port` scraping `targets` with the alert rules, its files (configuration, rule file,
    TSDB) under `directory`, once it is ready; None when Prometheus is not installed."""
    exe = binary()
    if exe is None:
        return None
    directory = directory.absolute()
    rule_file = write_rule_file(directory / "alert-rules.yml")
    config_file = directory / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config(targets, rule_file), sort_keys=False))
    cmd = [
        exe, f"--config.file={config_file}", f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address={LOOPBACK}:{port}", "--storage.tsdb.retention.time=7d",
    ]  # fmt: skip
    service = spawn("prometheus", cmd, port, log_path, cwd=directory)
    return _wait_ready(service, lambda: _http_ok(f"http://{LOOPBACK}:{port}/-/ready"))
