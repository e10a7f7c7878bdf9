"""One /metrics for the whole pod: the gRPC server's and the agent's samples join the gunicorn workers' folder under
their own identities, survive gunicorn's master clearing its own files, and a restarted gRPC server forgets its dead
predecessor's live gauges. Each process is a real child process (prometheus_client fixes its mode at import)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from predictor import metrics


def _grpc_process(version: str, predictions: int) -> None:
    from predictor.grpc.__main__ import join_pod_metrics

    join_pod_metrics()
    pod = metrics.Metrics()
    pod.set_serving(None, version)
    pod.count_predictions([0] * predictions)


def _worker_process(version: str) -> None:
    pod = metrics.Metrics()
    pod.set_serving(None, version)
    pod.count_predictions([1])


@pytest.fixture(autouse=True)
def pod_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The pod's folder, in the environment the child processes inherit (and clear_folder reads)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return tmp_path


def run(target: object, *args: object) -> None:
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    process.join(30)
    assert process.exitcode == 0


def samples(folder: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, str(folder))
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }


def test_the_grpc_servers_samples_join_the_pods_and_outlive_a_gunicorn_restart(tmp_path: Path) -> None:
    run(_worker_process, "v1")
    run(_grpc_process, "v1", 5)
    identities = {metrics.file_identity(p) for p in tmp_path.glob("counter_*.db")}
    assert len(identities) == 2
    assert len([i for i in identities if i.startswith(metrics.GRPC_FILE_PREFIX)]) == 1
    before = samples(tmp_path)
    assert before[("predictor_predictions_total", (("species", "setosa"),))] == 5  # the gRPC server's
    assert before[("predictor_predictions_total", (("species", "versicolor"),))] == 1  # the worker's

    metrics.clear_folder()  # gunicorn's master starting again: its own processes' files go, the gRPC server's stay
    after = samples(tmp_path)
    assert after[("predictor_predictions_total", (("species", "setosa"),))] == 5
    assert after[("predictor_predictions_total", (("species", "versicolor"),))] == 0
    assert after[("predictor_model_serving", (("version", "v1"),))] == 1  # the worker's 1 went with its files
    assert all(metrics.file_identity(p).startswith("grpc-") for p in tmp_path.glob("*.db"))


def test_a_restarted_grpc_server_forgets_its_dead_predecessors_serving_gauge(tmp_path: Path) -> None:
    run(_grpc_process, "v1", 1)
    assert samples(tmp_path)[("predictor_model_serving", (("version", "v1"),))] == 1
    run(_grpc_process, "v2", 1)  # a new container, the old one gone
    serving = {k: v for k, v in samples(tmp_path).items() if k[0] == "predictor_model_serving"}
    assert serving.get(("predictor_model_serving", (("version", "v1"),)), 0) == 0
    assert serving[("predictor_model_serving", (("version", "v2"),))] == 1
    assert samples(tmp_path)[("predictor_predictions_total", (("species", "setosa"),))] == 2  # counters add up
