"""`python -m predictor` as a real gunicorn server: 2 workers, ready, /predict, /api (seed client), V2, /metrics."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from core.iris import EXAMPLES
from core.lineage import Lineage
from devstack.emulators import Service, free_port
from predictor.lifecycle import handover
from tests.polling import wait_for
from tests.predictor.conftest import ADMIN_TOKEN, publish

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 40.0


@pytest.fixture
def served(store, fitted_model) -> Lineage:
    return publish(store, fitted_model)


@pytest.fixture
def server(common_env: dict[str, str], served: Lineage, tmp_path: Path) -> Iterator[Service]:
    env = {**common_env, "MODEL_EVENTS_ENABLED": "false", "RECONCILE_INTERVAL_WITHOUT_EVENTS": "1"}
    with serving(env, served, tmp_path) as service:
        yield service


@contextmanager
def serving(env: dict[str, str], served: Lineage, tmp_path: Path) -> Iterator[Service]:
    """`python -m predictor` with 2 workers on a free port and `env`, once both workers serve `served`."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PORT": str(free_port()), "WEB_CONCURRENCY": "2", **env}
    log_path = tmp_path / "predictor.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "predictor"], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    service = Service("predictor", f"127.0.0.1:{env['PORT']}", process, log_path)
    try:
        _wait_until_every_worker_serves(service, served.version)
        yield service
    finally:
        service.stop()


def _wait_until_every_worker_serves(service: Service, version: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and service.alive():
        try:
            text = requests.get(f"{service.url}/metrics", timeout=1).text
            if f'predictor_model_serving{{version="{version}"}} 2.0' in text:
                return
        except requests.RequestException:
            pass  # not listening yet, or workers still booting
        time.sleep(0.2)
    raise AssertionError(f"both workers did not load {version}:\n{service.log_path.read_text()[-3000:]}")


def test_server_answers_every_protocol(server: Service, served: Lineage) -> None:
    url = server.url
    assert requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
    # The seed capstone client: a bare list of measurements, answered as a JSON string of class ids.
    seed = requests.post(f"{url}/api", json=list(EXAMPLES["setosa"]), timeout=5)
    assert (seed.status_code, seed.json(), seed.headers["X-Model-Version"]) == (200, "[0]", served.version)
    predicted = requests.post(f"{url}/predict", json={"instances": [list(EXAMPLES["virginica"])]}, timeout=5).json()
    assert predicted["predictions"][0]["species"] == "virginica"
    infer = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": list(EXAMPLES["versicolor"])}]}
    outputs = requests.post(f"{url}/v2/models/iris/infer", json=infer, timeout=5).json()["outputs"]
    assert outputs[0]["data"] == [1]
    chunked = requests.post(
        f"{url}/api", data=iter([b"[5.1, 3.5, ", b"1.4, 0.2]"]), headers={"Content-Type": "application/json"}, timeout=5
    )
    assert chunked.json() == "[0]"
    oversized = requests.post(f"{url}/api", data=iter([b"[" + b" " * (2 << 20), b"]"]), timeout=10,
                              headers={"Content-Type": "application/json"})  # fmt: skip
    assert oversized.status_code == 413


def test_metrics_aggregate_both_workers(server: Service) -> None:
    for _ in range(20):
        requests.post(f"{server.url}/api", json=list(EXAMPLES["setosa"]), timeout=5)
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    count = re.search(r'predictor_requests_total\{route="/api",status="200"\} (\S+)', text)
    assert count is not None
    assert float(count.group(1)) == 20.0
    assert 'predictor_predictions_total{species="setosa"} 20.0' in text
    assert "predictor_request_duration_seconds_bucket" in text


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_the_triton_http_client_infers(server: Service, served: Lineage, binary: bool) -> None:
    """tritonclient sends no Content-Type; JSON or binary tensors both ways, the request id echoed, outputs chosen."""
    import numpy as np
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server.host, connection_timeout=5, network_timeout=5)
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    x = triton.InferInput("x", [2, 4], "FP32")
    x.set_data_from_numpy(np.array([EXAMPLES["setosa"], EXAMPLES["virginica"]], dtype=np.float32), binary_data=binary)
    wanted = [triton.InferRequestedOutput("predict", binary_data=binary)]
    result = client.infer("iris", [x], outputs=wanted, request_id="r-1")
    assert result.as_numpy("predict").tolist() == [0, 2]
    assert result.as_numpy("predict_proba") is None
    response = result.get_response()
    assert (response["id"], response["model_version"]) == ("r-1", served.version)
    everything = client.infer("iris", [x])  # no outputs named: the client asks for binary_data_output
    proba = everything.as_numpy("predict_proba")
    assert proba.shape == (2, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    client.close()


def test_a_pin_through_one_worker_is_served_by_every_worker(
    common_env: dict[str, str], store, fitted_model, tmp_path: Path
) -> None:
    """The pod's agent decides a pin once: whichever worker a request reaches, every worker then serves the pin
    (HANDOVER_DIR/workers/<pid> holds what each serves), and an unpin brings them all back."""
    old, new = publish(store, fitted_model), publish(store, fitted_model)
    folder = tmp_path / "handover"
    env = {**common_env, "MODEL_EVENTS_ENABLED": "false", "RECONCILE_INTERVAL_WITHOUT_EVENTS": "300",
           "ADMIN_TOKEN": ADMIN_TOKEN, "HANDOVER_DIR": str(folder)}  # fmt: skip
    token = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with serving(env, new, tmp_path) as server:
        assert sorted(handover.worker_versions(folder).values()) == [new.version] * 2
        pinned = requests.put(f"{server.url}/admin/pin", json={"version": old.version}, headers=token, timeout=40)
        assert pinned.status_code == 200, pinned.text
        assert (pinned.json()["pinned"], pinned.headers["X-Model-Version"]) == (old.version, old.version)
        wait_for(lambda: sorted(handover.worker_versions(folder).values()) == [old.version] * 2, 5,
                 "both workers serving the pin", service=server)  # fmt: skip
        for _ in range(10):  # new connections: whichever worker answers, it serves the pin
            info = requests.get(f"{server.url}/v1/model", timeout=5).json()
            assert (info["model_version"], info["pinned"]) == (old.version, old.version)
        unpinned = requests.delete(f"{server.url}/admin/pin", headers=token, timeout=40)
        assert (unpinned.status_code, unpinned.json()["model_version"]) == (200, new.version)
        wait_for(lambda: sorted(handover.worker_versions(folder).values()) == [new.version] * 2, 5,
                 "both workers back on the newest", service=server)  # fmt: skip
