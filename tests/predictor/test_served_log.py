"""The prediction log and the drift window wired into `python -m predictor` (2 workers, its agent) and the gRPC
server beside it: every answer on every route reaches the bucket once under its id, refusals without features, and
shifted traffic raises the pod's drift flag in /metrics (fake-gcs-server, small rotation); the bucket's live accuracy
document reaches the pod's /metrics, /v1/model and /v1/model/monitoring."""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import requests
from google.cloud import storage
from sklearn.datasets import load_iris

from core import liveaccuracy
from core.drift import Reference
from core.iris import CLASSES, EXAMPLES, FEATURES
from core.lineage import Lineage
from core.store import ModelStore
from devstack.emulators import Service
from predictor.predlog import record
from predictor.protos import grpc_predict_v2_pb2 as pb
from predictor.protos import grpc_predict_v2_pb2_grpc as pb_grpc
from tests import keys
from tests.predictor.conftest import METRICS
from tests.predictor.grpc.grpc_fixtures import start_grpc_server, wait_serving
from tests.predictor.predlog.helpers import shipped
from tests.predictor.test_server import serving

pytestmark = pytest.mark.integration

SHIPPED_TIMEOUT = 40.0
PETAL_LENGTH = FEATURES.index("petal_length")


def iris_rows() -> np.ndarray:
    return np.asarray(load_iris().data, dtype=np.float64)


@pytest.fixture
def served(store: ModelStore, fitted_model: Any) -> Lineage:
    """A model whose lineage carries the reference statistics of the iris data it was fitted on."""
    data = load_iris()
    reference = Reference.of(data.data, np.asarray(CLASSES)[data.target]).to_lineage()
    return store.publish(
        fitted_model, data_fingerprint="sha256:test", row_count=150, metrics=METRICS, reference=reference
    )


@pytest.fixture
def pod_env(common_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **common_env, "MODEL_EVENTS_ENABLED": "false", "RECONCILE_INTERVAL_WITHOUT_EVENTS": "1",
        "HANDOVER_DIR": str(tmp_path / "handover"), "PREDICTION_LOG_DIR": str(tmp_path / "spool"),
        "PREDICTION_LOG_ROTATE_SECONDS": "1", "PREDICTION_LOG_BATCH_INTERVAL": "1", "POD_NAME": "pod-a",
        "DRIFT_WINDOW_ROWS": "150", "DRIFT_MIN_ROWS": "150", "LIVE_ACCURACY_INTERVAL": "1",
    }  # fmt: skip


@pytest.fixture
def pod(pod_env: dict[str, str], served: Lineage, tmp_path: Path) -> Iterator[Service]:
    (tmp_path / "handover").mkdir()
    with serving(pod_env, served, tmp_path) as service:
        yield service


def records_by_id(client: storage.Client, bucket: str, wanted: set[str]) -> dict[str, list[record.Record]]:
    """Every shipped record by id, once every id in `wanted` arrived (or the timeout passed)."""
    deadline = time.monotonic() + SHIPPED_TIMEOUT
    while True:
        found: dict[str, list[record.Record]] = {}
        for records in shipped(client, bucket).values():
            for r in records:
                found.setdefault(r.id, []).append(r)
        if wanted <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def grpc_infer(host: str, request_id: str = "", metadata: tuple[tuple[str, str], ...] = (), model: str = "iris") -> Any:
    message = pb.ModelInferRequest(model_name=model, id=request_id)
    message.inputs.add(name="x", datatype="FP64", shape=[1, 4]).contents.fp64_contents.extend(EXAMPLES["setosa"])
    with grpc.insecure_channel(host) as channel:
        return pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(message, metadata=metadata, timeout=5)


def v2_body(row: list[float], **more: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": row}], **more}


def test_every_answer_and_refusal_reaches_the_bucket_once_under_its_id(
    pod: Service, pod_env: dict[str, str], served: Lineage, storage_client: storage.Client, bucket_name: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    url, setosa = pod.url, list(EXAMPLES["setosa"])
    answered: dict[str, str] = {}  # id -> route
    response = requests.post(f"{url}/predict", json={"instances": [setosa, setosa]}, timeout=5)
    answered[response.headers["X-Request-Id"]] = "predict"
    response = requests.post(f"{url}/predict", json={"instances": [setosa]}, headers={"X-Request-Id": "p-1"}, timeout=5)
    assert (response.status_code, response.headers["X-Request-Id"]) == (200, "p-1")
    answered["p-1"] = "predict"
    response = requests.post(f"{url}/api", json=setosa, headers={"X-Request-Id": "a-1"}, timeout=5)
    assert (response.json(), response.headers["X-Request-Id"]) == ("[0]", "a-1")
    answered["a-1"] = "api"
    infer = f"{url}/v2/models/iris/infer"
    response = requests.post(infer, json=v2_body(setosa, id="v-body"), headers={"X-Request-Id": "v-hdr"}, timeout=5)
    assert (response.json()["id"], response.headers["X-Request-Id"]) == ("v-body", "v-body")
    answered["v-body"] = "v2"
    response = requests.post(infer, json=v2_body(setosa), timeout=5)
    generated = response.json()["id"]
    assert re.fullmatch("[0-9a-f]{32}", generated)
    assert response.headers["X-Request-Id"] == generated
    answered[generated] = "v2"
    # refusals: recorded with their reason and status, never their features
    refused = requests.post(f"{url}/predict", json={"instances": [[1, 2]]}, headers={"X-Request-Id": "r-1"}, timeout=5)
    assert (refused.status_code, refused.headers["X-Request-Id"]) == (400, "r-1")
    # a client id the log cannot hold: 400 naming where it came from, answered under a new id
    bad = requests.post(f"{url}/predict", json={"instances": [setosa]}, headers={"X-Request-Id": "a b"}, timeout=5)
    assert (bad.status_code, bad.json()["error"]["details"]["field"]) == (400, "X-Request-Id")
    assert bad.headers["X-Request-Id"] not in ("", "a b")
    bad = requests.post(infer, json=v2_body(setosa, id="\x01"), timeout=5)
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("id:")
    assert requests.get(f"{url}/v2/health/live", timeout=5).headers["X-Request-Id"]  # every answer has one
    # gRPC, its own process on the same handover and spool
    grpc_server = start_grpc_server({**pod_env, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, tmp_path / "grpc.log")
    try:
        wait_serving(grpc_server)
        assert grpc_infer(grpc_server.host, "g-1").id == "g-1"
        assert grpc_infer(grpc_server.host, metadata=(("x-request-id", "g-meta"),)).id == "g-meta"
        assert re.fullmatch("[0-9a-f]{32}", grpc_infer(grpc_server.host).id)
        with pytest.raises(grpc.RpcError) as refusal:
            grpc_infer(grpc_server.host, "g-refused", model="tulip")
        assert refusal.value.code() is grpc.StatusCode.NOT_FOUND
    finally:
        grpc_server.stop()
    answered.update({"g-1": "grpc", "g-meta": "grpc"})

    found = records_by_id(storage_client, bucket_name, {*answered, "r-1", "g-refused"})
    for request_id, route in answered.items():
        assert len(found.get(request_id, [])) == 1, request_id
        [answer] = found[request_id]
        assert isinstance(answer, record.Answer)
        assert (answer.route, answer.version, answer.features[0]) == (route, served.version, setosa)
        assert answer.classes[0] == "setosa"
    for request_id, route, status in (("r-1", "predict", 400), ("g-refused", "grpc", 404)):
        [refusal_record] = found[request_id]
        assert isinstance(refusal_record, record.Refusal)
        assert (refusal_record.route, refusal_record.status, refusal_record.version) == (route, status, served.version)
        assert not hasattr(refusal_record, "features")
    names = [blob.name for blob in storage_client.list_blobs(bucket_name, prefix="predictions/")]
    assert names
    assert all(re.fullmatch(r"predictions/date=\d{4}-\d\d-\d\d/pod-a-.+\.jsonl\.gz", n) for n in names)
    text = requests.get(f"{url}/metrics", timeout=5).text
    sent = re.search(r'predictor_prediction_log_records_total\{outcome="sent"\} (\S+)', text)
    assert sent is not None
    assert float(sent.group(1)) >= len(answered) + 2  # the agent ships (and counts) every process's files
    assert 'predictor_prediction_log_records_total{outcome="dropped"} 0.0' in text
    assert re.search(r"^predictor_agent_behind_bucket 0\.0$", text, re.MULTILINE)  # the agent's, in the pod's /metrics
    agent = requests.get(f"{url}/v1/model", timeout=5).json()["agent"]
    assert agent["prediction_log"]["failures"] == 0


def drift_flag(url: str, feature: str) -> tuple[float | None, float | None]:
    """(predictor_drift_detected, predictor_drift_window_rows) in the pod's /metrics."""
    text = requests.get(f"{url}/metrics", timeout=5).text
    flag = re.search(rf'predictor_drift_detected\{{feature="{feature}"\}} (\S+)', text)
    rows = re.search(r"^predictor_drift_window_rows (\S+)$", text, re.MULTILINE)
    return (float(flag.group(1)) if flag else None), (float(rows.group(1)) if rows else None)


def send_rows(url: str, rows: np.ndarray) -> None:
    for batch in np.array_split(rows, 5):
        response = requests.post(f"{url}/predict", json={"instances": batch.round(2).tolist()}, timeout=5)
        assert response.status_code == 200, response.text


def wait_for_window(url: str, rows: float, flag: float) -> tuple[float | None, float | None]:
    deadline = time.monotonic() + SHIPPED_TIMEOUT
    seen = drift_flag(url, "petal_length")
    while seen != (flag, rows) and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = drift_flag(url, "petal_length")
    return seen


def test_shifted_traffic_raises_the_pods_drift_flag_and_iris_traffic_does_not(pod: Service) -> None:
    assert drift_flag(pod.url, "petal_length") == (0.0, 0.0)  # exported from the start, no verdict yet
    send_rows(pod.url, iris_rows())
    assert wait_for_window(pod.url, 150.0, 0.0) == (0.0, 150.0)
    shifted = iris_rows()
    shifted[:, PETAL_LENGTH] += 1.5
    send_rows(pod.url, shifted)
    assert wait_for_window(pod.url, 150.0, 1.0) == (1.0, 150.0)
    text = requests.get(f"{pod.url}/metrics", timeout=5).text
    assert 'predictor_drift_detected{feature="sepal_width"} 0.0' in text  # only the shifted feature


def test_a_clean_shutdown_ships_every_record(
    pod_env: dict[str, str], served: Lineage, storage_client: storage.Client, bucket_name: str, tmp_path: Path
) -> None:
    """Nothing rotates or ships while serving; SIGTERM: the workers close their logs, then the agent's last pass."""
    env = {**pod_env, "PREDICTION_LOG_ROTATE_SECONDS": "3600", "PREDICTION_LOG_BATCH_INTERVAL": "3600"}
    (tmp_path / "handover").mkdir()
    with serving(env, served, tmp_path) as service:
        sent = {f"s-{i}" for i in range(40)}
        for request_id in sorted(sent):
            response = requests.post(
                f"{service.url}/api", json=list(EXAMPLES["virginica"]), headers={"X-Request-Id": request_id}, timeout=5
            )
            assert response.status_code == 200
        assert not shipped(storage_client, bucket_name)  # everything is still spooled
    assert service.process.returncode is not None
    found = records_by_id(storage_client, bucket_name, sent)
    assert {request_id: len(found.get(request_id, [])) for request_id in sent} == dict.fromkeys(sent, 1)
    assert not list((tmp_path / "spool").glob("*.jsonl"))


def feedback_by_id(client: storage.Client, bucket: str, wanted: int) -> dict[tuple[str, int], str]:
    """(id, row) -> label of every shipped feedback record, once `wanted` arrived (or the timeout passed)."""
    deadline = time.monotonic() + SHIPPED_TIMEOUT
    while True:
        found = {}
        for blob in client.list_blobs(bucket, prefix="feedback/"):
            assert re.fullmatch(
                r"feedback/date=\d{4}-\d\d-\d\d/pod-a-\d{8}T\d{6}-[0-9a-f]{12}-\d{6}\.jsonl\.gz", blob.name
            )
            for line in gzip.decompress(blob.download_as_bytes()).splitlines():
                item = record.from_line(line)
                assert isinstance(item, record.Feedback)
                found[item.id, item.row] = item.label
        if len(found) >= wanted or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_feedback_reaches_the_bucket_while_serving_and_on_shutdown(
    pod_env: dict[str, str], served: Lineage, storage_client: storage.Client, bucket_name: str, tmp_path: Path
) -> None:
    """The workers spool accepted feedback in its own folder; the agent's second shipper takes it to feedback/."""
    token = "feedback-pod-token-0123"
    (tmp_path / "handover").mkdir()
    with serving({**pod_env, "FEEDBACK_TOKEN": token}, served, tmp_path) as service:
        url, auth = f"{service.url}/v1/feedback", {"Authorization": f"Bearer {token}"}
        setosa = list(EXAMPLES["setosa"])
        predicted = requests.post(f"{service.url}/predict", json={"instances": [setosa, setosa]}, timeout=5)
        request_id = predicted.headers["X-Request-Id"]
        items = [{"id": request_id, "label": "setosa"}, {"id": request_id, "row": 1, "label": "Iris-versicolor"}]
        response = requests.post(url, json={"feedback": items}, headers=auth, timeout=5)
        assert (response.status_code, response.json()["accepted"]) == (202, 2)
        assert requests.post(url, json=items[0], timeout=5).status_code == 401
        assert feedback_by_id(storage_client, bucket_name, 2) == {
            (request_id, 0): "setosa",
            (request_id, 1): "versicolor",
        }
        text = requests.get(f"{service.url}/metrics", timeout=5).text
        assert 'predictor_feedback_records_total{outcome="accepted"} 2.0' in text
        last = requests.post(url, json={"id": "at-shutdown", "label": 2}, headers=auth, timeout=5)
        assert last.status_code == 202
    assert service.process.returncode is not None
    assert feedback_by_id(storage_client, bucket_name, 3)["at-shutdown", 0] == "virginica"
    assert not list((tmp_path / "spool" / "feedback").glob("*.jsonl"))
    answers = records_by_id(storage_client, bucket_name, {request_id})
    assert [type(r) for r in answers[request_id]] == [record.Answer], "predictions and feedback never mixed"


def gauge(text: str, name: str, version: str) -> float | None:
    found = re.search(rf'^{name}\{{version="{version}"\}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_live_accuracy_and_drift_reach_the_pods_metrics_and_monitoring(
    pod: Service, served: Lineage, storage_client: storage.Client, bucket_name: str
) -> None:
    url, version = pod.url, served.version
    assert requests.get(f"{url}/v1/model", timeout=5).json()["live_accuracy"] is None  # no feedback yet
    updated = "2026-12-05T01:30:00.123456Z"
    document = {"schema": 1, "updated": updated, "versions": {version: {
        "correct": 18, "total": 24, "series": [{"time": updated, "correct": 18, "total": 24}],
        "offline": {"accuracy": 0.97, "accuracy_floor": 0.9}}}}  # fmt: skip
    liveaccuracy.write(storage_client.bucket(bucket_name), "feedback/", json.dumps(document).encode(), keys.KEYRING)
    deadline = time.monotonic() + SHIPPED_TIMEOUT
    text = ""
    while gauge(text, "predictor_live_accuracy", version) is None and time.monotonic() < deadline:
        time.sleep(0.5)
        text = requests.get(f"{url}/metrics", timeout=5).text
    assert gauge(text, "predictor_live_accuracy", version) == 0.75
    assert gauge(text, "predictor_live_accuracy_rows", version) == 24
    assert gauge(text, "predictor_model_accuracy_floor", version) == 0.9  # the lineage has none: the document's
    live = requests.get(f"{url}/v1/model", timeout=5).json()["live_accuracy"]
    assert live == {"accuracy": 0.75, "correct": 18, "total": 24, "updated": updated}
    monitoring = requests.get(f"{url}/v1/model/monitoring", timeout=5).json()
    assert (monitoring["version"], monitoring["accuracy"]) == (version, document)
    assert (monitoring["drift"]["version"], monitoring["drift"]["window_rows"]) == (version, 0)
    assert set(monitoring["drift"]["features"]) == {*FEATURES, "predicted_class"}
