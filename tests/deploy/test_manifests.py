"""k8s/: schema validation, and the manifests agree with the code (settings fields, routes, ports, labels)."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
from pydantic_settings import BaseSettings

from predictor.agent.service import STOP_BUDGET_MAX
from predictor.http.app import create_app
from predictor.predlog.settings import PredictionLogSettings
from predictor.predlog.shipper import FINAL_PASS_TIMEOUT
from predictor.settings import PredictorSettings
from tests import keys
from tests.deploy.conftest import (
    K8S,
    KUBERNETES_VERSION,
    OVERLAYS,
    base_resources,
    find,
    kustomization,
    load_yaml_docs,
    overlay_literals,
)
from trainer.settings import TrainerSettings

EXTRA_ENV = {"PROMETHEUS_MULTIPROC_DIR", "HOME", "TMPDIR"}
SETTINGS: dict[str, type[BaseSettings]] = {
    "predictor": PredictorSettings,
    "grpc": PredictorSettings,
    "trainer": TrainerSettings,
}
RESOURCES = base_resources()
CUSTOM_GROUPS = {"gateway.networking.k8s.io", "networking.gke.io", "monitoring.googleapis.com"}
PREDICTOR, WATCHER = "iris-predictor", "iris-trainer-watch"


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    return spec["template"]["spec"]


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "CronJob")]


def env_names(container: dict[str, Any], docs: list[dict[str, Any]]) -> set[str]:
    names = {e["name"] for e in container.get("env", [])}
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    for source in container.get("envFrom", []):
        names |= set(configmaps[source["configMapRef"]["name"]]["data"])
    return names


def validate(docs: list[dict[str, Any]]) -> None:
    """Kubernetes' own kinds against the schema; Gateway API and GKE policies are checked in test_gateway.py."""
    for doc in docs:
        if doc["apiVersion"].split("/")[0] in CUSTOM_GROUPS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {e.message} at {list(e.path)}")


def test_base_files_validate_against_the_kubernetes_schema() -> None:
    validate(RESOURCES)
    assert {d["kind"] for d in RESOURCES} >= {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "CronJob",
    }


def test_kustomize_builds_and_validates(built: list[dict[str, Any]]) -> None:
    validate(built)
    assert {d["metadata"].get("namespace") for d in built if d["kind"] != "Namespace"} == {"iris"}


def test_invalid_manifest_is_rejected() -> None:
    broken = find(RESOURCES, "Deployment", PREDICTOR) | {"spec": {"replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_every_env_var_is_a_settings_field(overlay: str) -> None:
    docs = [dict(d) for d in RESOURCES]
    for name, literals in ({} if overlay == "base" else overlay_literals(overlay)).items():
        find(docs, "ConfigMap", name)["data"].update(literals)
    for workload in workloads(docs):
        for container in pod_spec(workload)["containers"]:
            fields = {f.upper() for f in SETTINGS[container["name"]].model_fields}
            unknown = {n for n in env_names(container, docs) - fields - EXTRA_ENV if not n.startswith("PYTHON")}
            assert not unknown, f"{container['name']}: not settings fields: {sorted(unknown)}"


def test_configmaps_hold_valid_settings() -> None:
    docs = RESOURCES
    deployment, cronjob, watcher = (
        find(docs, "Deployment", PREDICTOR),
        find(docs, "CronJob"),
        find(docs, "Deployment", WATCHER),
    )
    for workload, cls in ((deployment, PredictorSettings), (cronjob, TrainerSettings), (watcher, TrainerSettings)):
        container = pod_spec(workload)["containers"][0]
        values: dict[str, str] = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        for source in container["envFrom"]:
            values |= find(docs, "ConfigMap", source["configMapRef"]["name"])["data"]
        fields = {k.lower(): v for k, v in values.items() if k.lower() in cls.model_fields}
        cls.model_validate(fields | keys.settings())  # the mounted key paths exist only in a pod


def test_probes_hit_real_routes_on_the_admin_port() -> None:
    """Probes and scraping go to nginx's admin port, in front of gunicorn's ADMIN_PORT on loopback: the public port
    is not in their way, and slow clients on the admin port meet nginx's timeouts, not gunicorn's threads."""
    app = create_app(PredictorSettings.model_validate(keys.settings()))
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    spec = pod_spec(find(RESOURCES, "Deployment", PREDICTOR))
    container = spec["containers"][0]
    (proxy,) = [c for c in spec["initContainers"] if c["name"] == "proxy"]
    ports = {p["name"]: p["containerPort"] for p in proxy["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["BIND_HOST"] == env["ADMIN_BIND_HOST"] == "127.0.0.1"  # reachable only through nginx
    assert int(env["ADMIN_PORT"]) != ports["admin"]
    assert "ports" not in container  # the public and admin ports are nginx's
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in routes
        assert get["port"] == ports["admin"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    template = find(RESOURCES, "Deployment", PREDICTOR)["spec"]["template"]["metadata"]["annotations"]
    assert template["prometheus.io/path"] in routes
    assert int(template["prometheus.io/port"]) == ports["admin"]


def test_selectors_match_labels() -> None:
    deployment = find(RESOURCES, "Deployment", PREDICTOR)
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert find(RESOURCES, "Service")["spec"]["selector"] == selector
    assert find(RESOURCES, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    for constraint in pod_spec(deployment)["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"] == selector
    hpa = find(RESOURCES, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (hpa["kind"], hpa["name"]) == ("Deployment", deployment["metadata"]["name"])


def test_service_exposes_port_80_to_http() -> None:
    """Cluster-internal: the Gateway is the only public entry point."""
    service = find(RESOURCES, "Service")["spec"]
    assert service.get("type", "ClusterIP") == "ClusterIP"
    assert (80, "http") in [(p["port"], p["targetPort"]) for p in service["ports"]]


@pytest.mark.parametrize(("kind", "name"), [("Deployment", PREDICTOR), ("Deployment", WATCHER), ("CronJob", None)])
def test_pods_are_locked_down(kind: str, name: str | None) -> None:
    spec = pod_spec(find(RESOURCES, kind, name))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for container in [*spec["containers"], *spec.get("initContainers", [])]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["capabilities"]["drop"] == ["ALL"]
        assert {"requests", "limits"} <= container["resources"].keys()
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize(("kind", "name"), [("Deployment", PREDICTOR), ("Deployment", WATCHER), ("CronJob", None)])
def test_no_pod_mounts_a_service_account_token(kind: str, name: str | None) -> None:
    """Workload Identity reaches Google APIs through the metadata server; nothing calls the Kubernetes API."""
    assert pod_spec(find(RESOURCES, kind, name))["automountServiceAccountToken"] is False


def test_only_the_model_agent_and_the_gunicorn_workers_write_the_handover() -> None:
    """The gRPC server faces the internet without nginx in front: it reads the handover, read-only."""
    spec = pod_spec(find(RESOURCES, "Deployment", PREDICTOR))
    handover = next(e["value"] for e in spec["containers"][0]["env"] if e["name"] == "HANDOVER_DIR")
    writable = {
        c["name"]
        for c in [*spec["initContainers"], *spec["containers"]]
        for m in c["volumeMounts"]
        if m["mountPath"] == handover and not m.get("readOnly", False)
    }
    assert writable == {"model-agent", spec["containers"][0]["name"]}
    grpc = next(c for c in spec["containers"] if c["name"] == "grpc")
    assert [m.get("readOnly") for m in grpc["volumeMounts"] if m["mountPath"] == handover] == [True]


@pytest.mark.parametrize(("kind", "name"), [("Deployment", PREDICTOR), ("Deployment", WATCHER), ("CronJob", None)])
def test_only_the_trainer_mounts_the_private_key(kind: str, name: str | None) -> None:
    spec = pod_spec(find(RESOURCES, kind, name))
    volumes = {v["name"]: v.get("secret", {}).get("secretName") for v in spec["volumes"]}
    for container in spec["containers"]:
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert mounts[env["MODEL_PUBLIC_KEYS_DIR"]] == "iris-model-public-keys"
        if name == PREDICTOR:
            assert "MODEL_SIGNING_PRIVATE_KEY_FILE" not in env
            assert "iris-signing-key" not in volumes.values()
        else:
            assert mounts[env["MODEL_SIGNING_PRIVATE_KEY_FILE"].rsplit("/", 1)[0]] == "iris-signing-key"


def test_predictor_rollout_and_shutdown_budget() -> None:
    deployment = find(RESOURCES, "Deployment", PREDICTOR)
    spec = pod_spec(deployment)
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = spec["containers"][0]
    env = env_names(container, RESOURCES)
    assert {"POD_NAME", "PROMETHEUS_MULTIPROC_DIR"} <= env
    fields = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container["env"]
        if "valueFrom" in e and "fieldRef" in e["valueFrom"]
    }
    assert fields == {"POD_NAME": "metadata.name"}
    multiproc = next(e["value"] for e in container["env"] if e["name"] == "PROMETHEUS_MULTIPROC_DIR")
    assert multiproc in {m["mountPath"] for m in container["volumeMounts"]}
    graceful = int(find(RESOURCES, "ConfigMap", "iris-predictor")["data"]["GRACEFUL_TIMEOUT"])
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] >= graceful + pre_stop + STOP_BUDGET_MAX + FINAL_PASS_TIMEOUT


def quantity_bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([KMG]i)?", quantity).groups()  # type: ignore[union-attr]
    return int(number) * {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}[unit]


def test_every_serving_container_and_the_agent_share_the_prediction_log_spool_on_disk() -> None:
    """The serving processes write the spool and the agent ships (and deletes) from it: all read-write, one
    disk-backed emptyDir with room for the spool bound plus one open file per serving process."""
    spec = pod_spec(find(RESOURCES, "Deployment", PREDICTOR))
    containers = [next(c for c in spec["initContainers"] if c["name"] == "model-agent"), *spec["containers"]]
    folders = {c["name"]: {e["name"]: e.get("value") for e in c["env"]}.get("PREDICTION_LOG_DIR") for c in containers}
    [folder] = set(folders.values())
    assert folder is not None
    volumes = {v["name"]: v for v in spec["volumes"]}
    names = set()
    for container in containers:
        [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == folder]
        assert not mount.get("readOnly", False), container["name"]
        names.add(mount["name"])
    [name] = names
    empty_dir = volumes[name]["emptyDir"]
    assert "medium" not in empty_dir  # on disk: a memory-backed spool would count against the containers' memory
    data = find(RESOURCES, "ConfigMap", "iris-predictor")["data"]
    settings = PredictionLogSettings.model_validate({k.lower(): v for k, v in data.items()})
    workers = int(data.get("WEB_CONCURRENCY", PredictorSettings.model_fields["web_concurrency"].default))
    writers = workers + 1  # the gunicorn workers and the gRPC server
    needed = settings.prediction_log_max_spool_bytes + writers * settings.prediction_log_rotate_bytes
    assert quantity_bytes(empty_dir["sizeLimit"]) >= needed


def test_the_model_agent_is_a_sidecar_sharing_the_handover() -> None:
    spec = pod_spec(find(RESOURCES, "Deployment", PREDICTOR))
    agent = next(c for c in spec["initContainers"] if c["name"] == "model-agent")
    serving, *others = spec["containers"]
    assert (agent["args"], agent["restartPolicy"], agent["image"]) == (
        ["python", "-m", "predictor.agent"], "Always", serving["image"],
    )  # fmt: skip
    values = [{e["name"]: e.get("value") for e in c["env"]} for c in (agent, serving, *others)]
    assert values[1]["START_AGENT"] == "false"
    mounts = [{m["mountPath"]: m["name"] for m in c["volumeMounts"]} for c in (agent, serving, *others)]
    volumes = {v["name"]: v for v in spec["volumes"]}
    handover = values[0]["HANDOVER_DIR"]
    assert "emptyDir" in volumes[mounts[0][handover]]
    for env, mounted in zip(values[1:], mounts[1:], strict=True):  # every serving container follows the agent
        assert env["HANDOVER_DIR"] == handover
        assert mounted[handover] == mounts[0][handover]
    multiproc = values[0]["PROMETHEUS_MULTIPROC_DIR"]
    assert mounts[0][multiproc] == mounts[1][multiproc]


def test_trainer_cronjob_policy() -> None:
    cronjob = find(RESOURCES, "CronJob")["spec"]
    job = cronjob["jobTemplate"]["spec"]
    assert cronjob["concurrencyPolicy"] == "Forbid"
    assert {"startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"} <= cronjob.keys()
    assert job["backoffLimit"] >= 1
    assert job["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    stale_after = float(find(RESOURCES, "ConfigMap", "iris-trainer")["data"]["CLAIM_STALE_AFTER"])
    assert job["activeDeadlineSeconds"] > 0, "a hung run is ended and its Job retried"
    # live runs renew their claim every CLAIM_STALE_AFTER / 4 seconds, so only a dead run's claim goes stale
    assert stale_after <= 300, "a killed run's data is taken over within minutes"


def test_the_data_watcher_is_one_trainer_at_a_time_like_the_cronjob() -> None:
    watcher, cronjob = find(RESOURCES, "Deployment", WATCHER), find(RESOURCES, "CronJob")
    assert (watcher["spec"]["replicas"], watcher["spec"]["strategy"]) == (1, {"type": "Recreate"})
    container, cron_container = pod_spec(watcher)["containers"][0], pod_spec(cronjob)["containers"][0]
    assert container["args"] == ["python", "-m", "trainer", "--watch"]
    assert cron_container["args"] == ["python", "-m", "trainer", "--trigger", "cron"]
    for key in ("image", "envFrom", "env", "resources", "securityContext", "volumeMounts"):
        assert container[key] == cron_container[key], key
    assert pod_spec(watcher)["serviceAccountName"] == pod_spec(cronjob)["serviceAccountName"] == "iris-trainer"
    assert find(RESOURCES, "ConfigMap", "iris-common")["data"]["DATA_EVENTS_TOPIC"] == "data-events"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_sets_schedule_project_and_workload_identity(overlay: str) -> None:
    directory = K8S / "overlays" / overlay
    kust = kustomization(directory)
    common = overlay_literals(overlay)["iris-common"]
    project, bucket = common["GOOGLE_CLOUD_PROJECT"], common["GCS_BUCKET"]
    assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", project)
    assert "PROJECT_ID" not in bucket
    schedule = [p for p in kust["patches"] if p.get("target", {}).get("kind") == "CronJob"]
    assert schedule
    assert "/spec/schedule" in schedule[0]["patch"]
    accounts = load_yaml_docs(directory / "serviceaccounts.yaml")
    assert {a["metadata"]["name"] for a in accounts} == {"iris-predictor", "iris-trainer"}
    for account in accounts:
        gsa = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        assert gsa == f"{account['metadata']['name']}@{project}.iam.gserviceaccount.com"


def test_the_model_agent_and_the_data_watcher_have_liveness_probes_on_their_health_ports() -> None:
    """Each probe hits the /healthz of core.observe on the port its settings listen on."""
    spec = pod_spec(find(RESOURCES, "Deployment", PREDICTOR))
    agent = next(c for c in spec["initContainers"] if c["name"] == "model-agent")
    watcher = pod_spec(find(RESOURCES, "Deployment", WATCHER))["containers"][0]
    trainer_env = find(RESOURCES, "ConfigMap", "iris-trainer")["data"]
    agent_env = {e["name"]: e.get("value") for e in agent["env"]}
    for container, port in ((agent, agent_env["AGENT_HEALTH_PORT"]), (watcher, trainer_env["WATCH_HEALTH_PORT"])):
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        get = container["livenessProbe"]["httpGet"]
        assert get["path"] == "/healthz"
        assert ports[get["port"]] == int(port)
    # the probe may fail only after the heartbeat went stale: never during one long (but live) training run
    window = watcher["livenessProbe"]["periodSeconds"] * watcher["livenessProbe"]["failureThreshold"]
    assert float(trainer_env["WATCH_STALE_AFTER"]) >= 600
    assert window >= 60


def test_every_process_of_the_predictor_pod_writes_its_metrics_where_the_pods_metrics_are_read() -> None:
    """gunicorn's workers (whose /metrics aggregates the folder), the model agent and the gRPC server share one
    PROMETHEUS_MULTIPROC_DIR volume, so the pod's one scrape carries them all."""
    spec = pod_spec(find(RESOURCES, "Deployment", PREDICTOR))
    folders = {}
    for container in [*spec["initContainers"], *spec["containers"]]:
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if "PROMETHEUS_MULTIPROC_DIR" not in env:
            continue
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        mount = mounts[env["PROMETHEUS_MULTIPROC_DIR"]]
        assert not mount.get("readOnly", False), container["name"]
        folders[container["name"]] = mount["name"]
    assert set(folders) == {"model-agent", spec["containers"][0]["name"], "grpc"}
    assert set(folders.values()) == {"prometheus"}
