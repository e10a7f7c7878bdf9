"""The public path: Gateway -> HTTPRoute -> Service -> nginx (proxy sidecar) -> gunicorn on loopback.

Gateway API and GKE's policy resources are custom resources (no schema in kubernetes-validate): these checks hold
them to the shapes GKE accepts and to the rest of the manifests and the code (names, ports, routes, settings).
"""

from __future__ import annotations

import shlex
from typing import Any

from predictor import workers as worker_sockets
from predictor.http.app import create_app
from predictor.proxy import ProxySettings, render
from predictor.settings import PredictorSettings
from tests.deploy.conftest import base_resources, find
from tests.deploy.test_manifests import PREDICTOR, pod_spec
from tests.keys import settings as key_settings

RESOURCES = base_resources()
GATEWAY_CLASS = "gke-l7-global-external-managed"  # the global external Application Load Balancer
GFE_RANGES = {"35.191.0.0/16", "130.211.0.0/22"}  # Google's front ends and health checkers


def pod() -> dict[str, Any]:
    return pod_spec(find(RESOURCES, "Deployment", PREDICTOR))


def containers() -> dict[str, dict[str, Any]]:
    spec = pod()
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def test_gateway_is_the_global_external_load_balancer_with_tls_and_a_static_ip() -> None:
    gateway = find(RESOURCES, "Gateway", "iris")
    assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert gateway["spec"]["gatewayClassName"] == GATEWAY_CLASS
    assert gateway["spec"]["addresses"] == [{"type": "NamedAddress", "value": "iris-ip"}]
    assert gateway["metadata"]["annotations"]["networking.gke.io/certmap"] == "iris-certmap"
    listeners = {(x["name"], x["protocol"], x["port"]) for x in gateway["spec"]["listeners"]}
    assert listeners == {("https", "HTTPS", 443), ("http", "HTTP", 80)}
    for listener in gateway["spec"]["listeners"]:
        assert "tls" not in listener  # the certificate map serves TLS; GKE refuses both on one Gateway
        assert listener["allowedRoutes"] == {"namespaces": {"from": "Same"}}


def test_routes_reach_nginx_and_the_grpc_server_and_http_only_redirects() -> None:
    service = find(RESOURCES, "Service", PREDICTOR)
    service_ports = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}
    routes = {r["metadata"]["name"]: r for r in RESOURCES if r["kind"] == "HTTPRoute"}
    assert set(routes) == {"iris-predictor", "iris-https-redirect"}
    main, redirect = routes["iris-predictor"]["spec"], routes["iris-https-redirect"]["spec"]
    assert main["parentRefs"] == [{"name": "iris", "sectionName": "https"}]
    targets = {}
    for rule in main["rules"]:
        ((path,),) = [[m["path"]["value"] for m in rule["matches"]]]
        ((backend,),) = [rule["backendRefs"]]
        assert backend["name"] == PREDICTOR
        targets[path] = service_ports[backend["port"]]
    assert targets == {"/": "http", "/inference.GRPCInferenceService/": "grpc"}
    grpc_port = next(p for p in service["spec"]["ports"] if p["targetPort"] == "grpc")
    assert grpc_port["appProtocol"] == "kubernetes.io/h2c"
    assert redirect["parentRefs"] == [{"name": "iris", "sectionName": "http"}]
    ((rule,),) = [redirect["rules"]]
    assert "backendRefs" not in rule
    assert rule["filters"] == [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]


def test_health_check_and_backend_policies_target_the_service() -> None:
    app = create_app(PredictorSettings.model_validate(key_settings()))
    health = find(RESOURCES, "HealthCheckPolicy", PREDICTOR)
    backend = find(RESOURCES, "GCPBackendPolicy", PREDICTOR)
    for policy in (health, backend):
        assert policy["apiVersion"] == "networking.gke.io/v1"
        assert policy["spec"]["targetRef"] == {"group": "", "kind": "Service", "name": PREDICTOR}
    check = health["spec"]["default"]["config"]
    proxy_ports = {p["name"]: p["containerPort"] for p in containers()["proxy"]["ports"]}
    assert check["type"] == "HTTP"
    assert check["httpHealthCheck"]["port"] == proxy_ports["http"]
    assert check["httpHealthCheck"]["requestPath"] == "/v2/health/ready"
    assert "/v2/health/ready" in {rule.rule for rule in app.url_map.iter_rules()}
    default = backend["spec"]["default"]
    assert default["timeoutSec"] < ProxySettings.model_fields["proxy_read_timeout"].default
    assert 0 <= default["logging"]["sampleRate"] <= 1_000_000


def test_the_proxy_config_is_the_rendered_template_for_this_pod() -> None:
    """k8s/base/proxy/nginx.conf is `python -m predictor.proxy` for the predictor's PORT, ADMIN_PORT,
    WORKER_SOCKETS_DIR, WEB_CONCURRENCY and MAX_BODY_BYTES, and both containers mount the worker sockets' folder."""
    predictor, proxy = containers()["predictor"], containers()["proxy"]
    settings_map = find(RESOURCES, "ConfigMap", "iris-predictor")["data"]
    max_body, workers = int(settings_map["MAX_BODY_BYTES"]), int(settings_map["WEB_CONCURRENCY"])
    upstream = f"{env(predictor)['BIND_HOST']}:{env(predictor)['PORT']}"
    admin = f"{env(predictor)['ADMIN_BIND_HOST']}:{env(predictor)['ADMIN_PORT']}"
    sockets = env(predictor)["WORKER_SOCKETS_DIR"]
    config = find(RESOURCES, "ConfigMap", "iris-proxy")["data"]["nginx.conf"]
    regenerate = (
        f"python -m predictor.proxy --upstream {upstream} --admin-upstream {admin} --worker-sockets {sockets} "
        f"--workers {workers} --max-body-bytes {max_body} > k8s/base/proxy/nginx.conf"
    )
    paths = worker_sockets.socket_paths(sockets, workers)
    assert config == render(ProxySettings(), upstream, max_body, admin, paths), f"stale; run: {regenerate}"
    assert all(f"server unix:{path} " in config for path in paths)
    for container in (predictor, proxy):
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert {v["name"]: v for v in pod()["volumes"]}[mounts[sockets]]["emptyDir"]["medium"] == "Memory"
    settings = ProxySettings()
    ports = {p["name"]: p["containerPort"] for p in proxy["ports"]}
    assert ports == {"http": settings.proxy_port, "proxy-health": settings.proxy_health_port,
                     "admin": settings.proxy_admin_port}  # fmt: skip
    for probe in ("startupProbe", "livenessProbe"):
        assert proxy[probe]["httpGet"] == {"path": "/healthz", "port": "proxy-health"}
    mounts = {m["mountPath"]: m["name"] for m in proxy["volumeMounts"]}
    volumes = {v["name"]: v for v in pod()["volumes"]}
    command = shlex.join(proxy["command"])
    config_path = proxy["command"][proxy["command"].index("-c") + 1]
    assert volumes[mounts[config_path.rsplit("/", 1)[0]]]["configMap"]["name"] == "iris-proxy"
    assert "daemon off;" in command
    assert volumes[mounts[str(settings.proxy_runtime_dir)]]["emptyDir"]["medium"] == "Memory"
    assert proxy["restartPolicy"] == "Always"  # a native sidecar: up before gunicorn, down after it
    assert proxy["image"].startswith("nginx:")


def test_nginx_never_forwards_admin_or_metrics() -> None:
    """The public server refuses them; only the admin server (on PROXY_ADMIN_PORT) passes them to ADMIN_PORT."""
    config = find(RESOURCES, "ConfigMap", "iris-proxy")["data"]["nginx.conf"]
    public, admin = (block for block in config.split("    server {")[1:] if "proxy_pass" in block)
    assert f"listen 0.0.0.0:{ProxySettings().proxy_port};" in public
    assert "location ~ ^/(admin|metrics)(/|$) {\n            return 404" in public
    assert "proxy_pass http://predictor;" in public
    assert f"listen 0.0.0.0:{ProxySettings().proxy_admin_port};" in admin
    assert "proxy_pass http://predictor_admin;" in admin
    assert "return 404" not in admin
    assert "proxy_request_buffering on;" in config
    assert f"client_max_body_size {PredictorSettings.model_fields['max_body_bytes'].default};" in config


def test_only_the_load_balancer_reaches_the_public_ports() -> None:
    (policy,) = [
        p for p in RESOURCES if p["kind"] == "NetworkPolicy" and p["metadata"]["name"] == "iris-predictor-ingress"
    ]
    ports = {p["name"]: p["containerPort"] for c in containers().values() for p in c.get("ports", [])}
    rules = {tuple(sorted(p["port"] for p in rule["ports"])): rule["from"] for rule in policy["spec"]["ingress"]}
    assert rules.keys() == {tuple(sorted((ports["http"], ports["grpc"]))), (ports["admin"],)}
    public = rules[tuple(sorted((ports["http"], ports["grpc"])))]
    assert {peer["ipBlock"]["cidr"] for peer in public} == GFE_RANGES
    scrapers = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in rules[(ports["admin"],)]
    ]
    assert sorted(scrapers) == ["gmp-system", "monitoring"]  # Managed Prometheus's collectors, a self-managed one
