"""`make run`'s Prometheus: it scrapes the predictor, the model agent and the data watcher, evaluates exactly the
manifests' alert rules, and sees the drift alert go pending on shifted traffic and the live accuracy alert on a live
accuracy document below the serving model's floor."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import yaml
from sklearn.datasets import load_iris

from core import liveaccuracy, signing
from core.iris import FEATURES
from devstack import emulators, prometheus
from devstack import keys as devstack_keys
from tests.polling import wait_for
from tests.test_devstack import get, stack_ports, start_stack, stop_stack

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def api(base: str, path: str) -> Any:
    status, body = get(f"{base}{path}")
    return json.loads(body)["data"] if status == 200 else None


@pytest.mark.timeout(420)
@pytest.mark.skipif(prometheus.binary() is None, reason="prometheus not installed (apt-get install prometheus)")
@pytest.mark.skipif(
    emulators.pubsub_emulator_command(0) is None, reason="no Pub/Sub emulator: the stack has no watcher"
)
def test_the_stacks_prometheus_scrapes_all_three_and_loads_the_manifest_rules(tmp_path: Path) -> None:
    ports = stack_ports()
    env = {k: v for k, v in os.environ.items() if k not in {"STACK_DIR", "PUBSUB_EMULATOR_HOST"}}
    env |= {k: str(v) for k, v in ports.items()}
    env |= {"STACK_DIR": str(tmp_path / "stack"), "GCS_BUCKET": "prometheus-stack", "WEB_CONCURRENCY": "1"}
    env |= {  # a small drift window, fed within seconds by the prediction log
        "DRIFT_WINDOW_ROWS": "150", "DRIFT_MIN_ROWS": "100", "PREDICTION_LOG_ROTATE_SECONDS": "1",
        "PREDICTION_LOG_BATCH_INTERVAL": "1", "LIVE_ACCURACY_INTERVAL": "1",
    }  # fmt: skip
    log = tmp_path / "run.log"
    stack = start_stack(env, log)
    base = f"http://127.0.0.1:{ports['STACK_PROMETHEUS_PORT']}"
    expected = {
        "predictor": f"http://127.0.0.1:{ports['STACK_ADMIN_PORT']}/metrics",
        "model-agent": f"http://127.0.0.1:{ports['AGENT_HEALTH_PORT']}/metrics",
        "trainer-watch": f"http://127.0.0.1:{ports['WATCH_HEALTH_PORT']}/metrics",
    }
    try:
        ready = f"http://127.0.0.1:{ports['PORT']}/v2/health/ready"
        wait_for(lambda: get(ready)[0] == 200, 240, f"the stack to be ready (log {log})")

        def all_up() -> dict[str, str] | None:
            targets = (api(base, "/api/v1/targets") or {}).get("activeTargets", [])
            found = {t["labels"]["job"]: t["scrapeUrl"] for t in targets if t["health"] == "up"}
            return found if found == expected else None

        wait_for(all_up, 60, f"Prometheus to scrape {sorted(expected)} as up (log {log})", interval=1.0)
        assert f"Prometheus         {base}/" in log.read_text()
        manifest = {g["name"]: [(r["alert"], "alerting", "ok") for r in g["rules"]] for g in prometheus.rule_groups()}

        def loaded() -> dict[str, Any]:
            groups = api(base, "/api/v1/rules")["groups"]
            return {g["name"]: [(r["name"], r["type"], r["health"]) for r in g["rules"]] for g in groups}

        # health is "unknown" until the first evaluation of each group
        wait_for(lambda: loaded() == manifest, 30, "the manifest's rules loaded and evaluated", interval=1.0)
        assert loaded() == manifest
        written = yaml.safe_load((tmp_path / "stack" / "prometheus" / "alert-rules.yml").read_text())
        assert written == {"groups": prometheus.rule_groups()}
        for job, metric in (("model-agent", "predictor_agent_subscription_connected"),
                            ("trainer-watch", "trainer_watch_subscription_connected")):  # fmt: skip
            query = f"/api/v1/query?query={metric}%7Bjob%3D%22{job}%22%7D"
            result = wait_for(lambda q=query: api(base, q)["result"], 30, f"{metric} from {job}", interval=1.0)  # type: ignore[misc]
            assert result[0]["value"][1] == "1"
        send_shifted_traffic(f"http://127.0.0.1:{ports['PORT']}")

        def drift_alert() -> list[dict[str, Any]] | None:
            alerts = (api(base, "/api/v1/alerts") or {}).get("alerts", [])
            found = [a for a in alerts if a["labels"].get("alertname") == "IrisDriftDetected"]
            return found if any(a["labels"].get("feature") == "petal_length" for a in found) else None

        alerts = wait_for(drift_alert, 90, f"IrisDriftDetected for petal_length (log {log})", interval=1.0)
        assert {a["state"] for a in alerts} <= {"pending", "firing"}
        version = requests.get(f"http://127.0.0.1:{ports['PORT']}/v1/model", timeout=10).json()["model_version"]
        signer = signing.load_signer((tmp_path / "stack" / "keys" / devstack_keys.PRIVATE).read_bytes())
        publish_live_accuracy(
            f"127.0.0.1:{ports['STACK_GCS_PORT']}", env["GCS_BUCKET"], version, signing.Keyring.of(signer)
        )

        def accuracy_alert() -> list[dict[str, Any]] | None:
            alerts = (api(base, "/api/v1/alerts") or {}).get("alerts", [])
            found = [a for a in alerts if a["labels"].get("alertname") == "IrisLiveAccuracyBelowFloor"]
            return found or None

        alerts = wait_for(accuracy_alert, 90, f"IrisLiveAccuracyBelowFloor (log {log})", interval=1.0)
        assert [a["labels"]["version"] for a in alerts] == [version]
    finally:
        stop_stack(stack)


def publish_live_accuracy(gcs_host: str, bucket: str, version: str, keyring: signing.Keyring) -> None:
    """A live accuracy document with `version` at 0.5 on 40 answers, below its floor of 0.9, signed as the stack's
    trainer would."""
    updated = "2026-12-05T01:30:00.000000Z"
    document = {"schema": 1, "updated": updated, "versions": {version: {
        "correct": 20, "total": 40, "series": [{"time": updated, "correct": 20, "total": 40}],
        "offline": {"accuracy_floor": 0.9}}}}  # fmt: skip
    client = emulators.storage_client(gcs_host, "iris-local")
    liveaccuracy.write(client.bucket(bucket), "feedback/", json.dumps(document).encode(), keyring)


def send_shifted_traffic(url: str) -> None:
    """The iris rows with petal length +1.5 cm, through the stack's public port."""
    rows = np.asarray(load_iris().data, dtype=np.float64)
    rows[:, FEATURES.index("petal_length")] += 1.5
    for batch in np.array_split(rows.round(2), 3):
        response = requests.post(f"{url}/predict", json={"instances": batch.tolist()}, timeout=10)
        assert response.status_code == 200, response.text
