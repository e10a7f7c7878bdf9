"""cloudbuild.yaml: step ids and order, substitutions, referenced files, and image names shared with k8s/."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from functions.settings import IngestSettings
from tests.deploy.conftest import BASE, K8S, OVERLAYS, ROOT, base_resources, kustomization, overlay_literals
from tests.images import build as images

IMAGES = {"iris-predictor", "iris-trainer"}


def steps(cloudbuild: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in cloudbuild["steps"]}


def prerequisites(cloudbuild: dict[str, Any]) -> dict[str, set[str]]:
    """Step id -> every step that must finish before it (Cloud Build: no waitFor = all earlier steps)."""
    direct: dict[str, set[str]] = {}
    for i, step in enumerate(cloudbuild["steps"]):
        wait = step.get("waitFor")
        earlier = {s["id"] for s in cloudbuild["steps"][:i]}
        direct[step["id"]] = earlier if wait is None else set() if wait == ["-"] else set(wait)
    closed = {k: set(v) for k, v in direct.items()}
    for _ in closed:
        for k in closed:
            closed[k] |= {p for d in closed[k] for p in closed[d]}
    return closed


def text(step: dict[str, Any]) -> str:
    return " ".join([step["name"], step.get("entrypoint", ""), step.get("dir", ""), *step.get("args", [])])


def test_every_step_has_a_unique_id(cloudbuild: dict[str, Any]) -> None:
    ids = [s.get("id") for s in cloudbuild["steps"]]
    assert all(ids)
    assert len(ids) == len(set(ids))
    for step in cloudbuild["steps"]:
        assert set(step.get("waitFor", [])) <= {"-", *ids}


def test_tests_then_build_then_push_then_deploy(cloudbuild: dict[str, Any]) -> None:
    before = prerequisites(cloudbuild)
    by_id = steps(cloudbuild)
    tests = [i for i, s in by_id.items() if "pytest" in text(s)]
    builds = [i for i, s in by_id.items() if s["args"][0] == "build" and "docker" in s["name"]]
    pushes = [i for i, s in by_id.items() if s["args"][0] == "push"]
    deploys = [i for i, s in by_id.items() if re.search(r"\bapply\b|functions deploy|rollout", text(s))]
    assert tests
    assert len(builds) == 2
    assert len(pushes) == 2
    assert len(deploys) >= 3
    for build in builds:
        assert set(tests) <= before[build]
    for push in pushes:
        assert before[push] & set(builds)
    for deploy in deploys:
        assert set(tests) <= before[deploy]
        if "kubectl" in by_id[deploy]["name"]:
            assert set(pushes) <= before[deploy]


def test_every_substitution_used_is_defined(cloudbuild: dict[str, Any]) -> None:
    raw = (ROOT / "cloudbuild.yaml").read_text()
    body = "\n".join(line for line in raw.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"(?<!\$)\$\{?(_[A-Z_]+)", body))
    assert used == set(cloudbuild["substitutions"])
    builtins = set(re.findall(r"(?<!\$)\$\{?([A-Z][A-Z_]+)", body))
    assert builtins <= {"PROJECT_ID", "SHORT_SHA"}


def test_referenced_files_exist(cloudbuild: dict[str, Any]) -> None:
    by_id = steps(cloudbuild)
    overlay = cloudbuild["substitutions"]["_OVERLAY"]
    for step in by_id.values():
        if "dir" in step:
            assert (ROOT / step["dir"].replace("${_OVERLAY}", overlay) / "kustomization.yaml").is_file()
    assert (K8S / "overlays" / overlay).is_dir()
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"make ([\w -]+)\n", by_id["test"]["args"][-1])[0].split():
        assert re.search(rf"^{target}:", makefile, re.M), target
    referenced = [
        next(p for p in path if p)
        for step in by_id.values()
        for arg in step.get("args", [])
        for path in re.findall(r"--file=(\S+)|(?:^|\s)bash (\S+\.sh)", arg)
    ]
    assert {"Dockerfile.predictor", "Dockerfile.trainer", "functions/package.sh"} <= set(referenced)
    missing = [name for name in referenced if not (ROOT / name).is_file()]
    if missing == ["functions/package.sh"] and not (ROOT / "functions" / "README.md").exists():
        pytest.skip("functions/package.sh (the ingest function's staging command) is not written yet")
    assert missing == []


def test_image_names_match_kubernetes(cloudbuild: dict[str, Any]) -> None:
    subs = cloudbuild["substitutions"]
    registry = "${_REGION}-docker.pkg.dev/$PROJECT_ID/${_REPOSITORY}/"
    pushed = {image.split(":")[0] for image in cloudbuild["images"]}
    assert pushed == {registry + name for name in IMAGES}
    containers = {
        c["image"]
        for d in base_resources()
        if d["kind"] in ("Deployment", "CronJob")
        for c in (d["spec"].get("jobTemplate", d)["spec"]["template"]["spec"]["containers"])
    }
    assert containers == IMAGES
    set_images = steps(cloudbuild)["set-images"]["args"]
    assert {a.split("=")[0] for a in set_images if "=" in a} == IMAGES
    assert {a.split("=", 1)[1].split(":")[0] for a in set_images if "=" in a} == pushed
    for overlay in OVERLAYS:
        project = overlay_literals(overlay)["iris-common"]["GOOGLE_CLOUD_PROJECT"]
        images = {i["name"]: i["newName"] for i in kustomization(K8S / "overlays" / overlay)["images"]}
        expected = registry.replace("${_REGION}", subs["_REGION"]).replace("${_REPOSITORY}", subs["_REPOSITORY"])
        assert images == {name: expected.replace("$PROJECT_ID", project) + name for name in IMAGES}


def test_function_deploy_matches_the_bucket_trigger(cloudbuild: dict[str, Any]) -> None:
    script = steps(cloudbuild)["deploy-function"]["args"][-1]
    for flag in (
        "--gen2",
        "--runtime=python311",
        "--entry-point=ingest_upload",
        "--trigger-event-filters=type=google.cloud.storage.object.v1.finalized",
        "--trigger-event-filters=bucket=${_BUCKET}",
    ):
        assert flag in script
    env_vars = re.search(r"--set-env-vars=(\S+)", script)
    assert env_vars
    names = {pair.split("=")[0] for pair in env_vars.group(1).split(",")}
    assert names <= {f.upper() for f in IngestSettings.model_fields}
    assert {"GCS_BUCKET", "GOOGLE_CLOUD_PROJECT", "INVALID_ROWS_POLICY"} <= names


@pytest.mark.parametrize("step_id", ["deploy-k8s", "rollout-status"])
def test_cluster_steps_know_the_cluster(cloudbuild: dict[str, Any], step_id: str) -> None:
    env = dict(e.split("=", 1) for e in steps(cloudbuild)[step_id]["env"])
    assert env == {"CLOUDSDK_COMPUTE_REGION": "${_REGION}", "CLOUDSDK_CONTAINER_CLUSTER": "${_CLUSTER}"}
    namespace = kustomization(BASE)["namespace"]
    if step_id == "rollout-status":
        assert f"--namespace={namespace}" in steps(cloudbuild)[step_id]["args"]


@pytest.mark.parametrize("name", ["predictor", "trainer"])
def test_builds_set_the_build_args_the_image_tests_set(cloudbuild: dict[str, Any], name: str) -> None:
    args = steps(cloudbuild)[f"build-{name}"]["args"]
    passed = dict(a.removeprefix("--build-arg=").split("=", 1) for a in args if a.startswith("--build-arg="))
    declared = dict(re.findall(r"^ARG (\w+)=(\S+)$", (ROOT / f"Dockerfile.{name}").read_text(), re.M))
    assert set(passed) == set(declared) == set(images.BUILD_ARGS) == set(images.build_args("base")) - set(os.environ)
    assert passed == {arg: f"${{_{arg}}}" for arg in declared}
    # the substitutions' defaults are the Dockerfiles' own: Cloud Build builds on the real python image
    assert {arg: cloudbuild["substitutions"][f"_{arg}"] for arg in declared} == declared
