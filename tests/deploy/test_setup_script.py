"""deploy/setup-gcp.sh: valid bash, shellcheck-clean, --dry-run runs nothing and plans every resource, and a re-run
against existing resources creates nothing."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import BASE, K8S, OVERLAYS, kustomization, load_yaml_docs, overlay_literals

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "setup-gcp.sh"
PROJECT = "demo-project"

# Stand-ins for gcloud and kubectl: log each call; "describe"/"get" succeed (everything exists already).
STUB = """#!/usr/bin/env bash
printf '%s\\n' "$(basename "$0") $*" >> "$STUB_LOG"
case "$*" in
  *"notifications list"*) echo '[{"topic": "//pubsub.googleapis.com/projects/p/topics/model-events"},
    {"topic": "//pubsub.googleapis.com/projects/p/topics/data-events"}]' ;;
  *service-agent*) echo "service-1@gs-project-accounts.iam.gserviceaccount.com" ;;
esac
"""


def run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir(exist_ok=True)
    for name in ("gcloud", "kubectl"):
        (bin_dir / name).write_text(STUB)
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STUB_LOG": str(log), "HOME": str(tmp_path)}
    result = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return result, log.read_text().splitlines() if log.exists() else []


def planned(stdout: str) -> list[list[str]]:
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[list[str]]]:
    result, calls = run(
        tmp_path_factory.mktemp("dry"), "--project", PROJECT, "--dry-run", "--github-owner", "o", "--github-repo", "r"
    )
    assert calls == [], "--dry-run must not call gcloud or kubectl"
    return result.stdout, planned(result.stdout)


def has(commands: list[list[str]], *words: str) -> list[str]:
    matches = [c for c in commands if all(w in c for w in words)]
    assert matches, f"no planned command contains {words}"
    return matches[0]


def test_bash_syntax() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, timeout=30).returncode == 0


def test_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_requires_a_project(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"]}
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 2
    assert "--project" in result.stderr


def test_bucket_notifications_for_models_and_data(dry_run: tuple[str, list[list[str]]]) -> None:
    _, commands = dry_run
    bucket = f"gs://{PROJECT}-iris"
    has(commands, "gcloud", "storage", "buckets", "create", bucket, "--uniform-bucket-level-access")
    has(
        commands,
        "notifications",
        "create",
        bucket,
        "--event-types=OBJECT_FINALIZE",
        "--payload-format=json",
        "--object-prefix=models/",
        f"--topic=projects/{PROJECT}/topics/model-events",
    )
    has(
        commands,
        "notifications",
        "create",
        bucket,
        "--object-prefix=data/",
        f"--topic=projects/{PROJECT}/topics/data-events",
    )
    has(commands, "subscriptions", "create", "trainer-data-events", "--topic=data-events", "--ack-deadline=600")
    binding = has(commands, "subscriptions", "add-iam-policy-binding", "trainer-data-events")
    assert f"--member=serviceAccount:iris-trainer@{PROJECT}.iam.gserviceaccount.com" in binding
    assert "--role=roles/pubsub.subscriber" in binding
    has(commands, "buckets", "update", bucket, "--no-versioning")
    # superseded artifacts age out by customTime (stamped by the trainer); the newest has none and is never deleted
    assert '"daysSinceCustomTime": 180, "matchesPrefix": ["models/model-"]' in dry_run[0]


def test_workload_identity_bindings_match_the_service_accounts(dry_run: tuple[str, list[list[str]]]) -> None:
    _, commands = dry_run
    namespace = kustomization(BASE)["namespace"]
    for account in load_yaml_docs(BASE / "serviceaccounts.yaml"):
        name = account["metadata"]["name"]
        has(
            commands,
            "add-iam-policy-binding",
            f"{name}@{PROJECT}.iam.gserviceaccount.com",
            "--role=roles/iam.workloadIdentityUser",
            f"--member=serviceAccount:{PROJECT}.svc.id.goog[{namespace}/{name}]",
        )
        has(commands, "iam", "service-accounts", "create", name)


def test_cluster_registry_secret_and_trigger(dry_run: tuple[str, list[list[str]]]) -> None:
    _, commands = dry_run
    has(commands, "container", "clusters", "create-auto", "iris")
    has(commands, "artifacts", "repositories", "create", "iris", "--repository-format=docker")
    for name, keys in [
        ("iris-secrets", {"admin-token", "feedback-token"}),
        ("iris-signing-key", {"private-key.pem", "split-salt"}),
        ("iris-model-public-keys", {"ed25519-KEY_ID.pem"}),
    ]:
        secret = has(commands, "kubectl", "create", "secret", "generic", name)
        assert not any(a.startswith("--from-literal") for a in secret), "secret values never on a command line"
        assert {a.split("=")[1] for a in secret if a.startswith("--from-file")} == keys
    has(commands, "openssl", "genpkey", "-algorithm", "ed25519")
    has(commands, "builds", "triggers", "create", "github", "--build-config=cloudbuild.yaml")
    has(
        commands,
        f"--member=serviceAccount:iris-ingest@{PROJECT}.iam.gserviceaccount.com",
        "--role=roles/eventarc.eventReceiver",
    )


def test_bucket_access_is_limited_to_prefixes(dry_run: tuple[str, list[list[str]]]) -> None:
    stdout, commands = dry_run
    grants = [c for c in commands if c[:4] == ["gcloud", "storage", "buckets", "add-iam-policy-binding"]]
    assert grants
    assert all(any(a.startswith("--condition-from-file=") for a in c) for c in grants)
    assert f'startsWith("projects/_/buckets/{PROJECT}-iris/objects/models/")' in stdout
    assert f'startsWith("projects/_/buckets/{PROJECT}-iris/objects/reports/")' in stdout  # the trainer's reports
    assert not any("roles/pubsub.editor" in c for c in commands)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_bucket_follows_the_script_default(overlay: str) -> None:
    common = overlay_literals(overlay)["iris-common"]
    assert common["GCS_BUCKET"] == f"{common['GOOGLE_CLOUD_PROJECT']}-iris"
    assert (K8S / "overlays" / overlay / "serviceaccounts.yaml").is_file()


def test_rerun_creates_nothing_that_exists(tmp_path: Path) -> None:
    result, calls = run(tmp_path, "--project", PROJECT)
    creates = [c for c in calls if " create " in f" {c} " or " create-auto " in f" {c} "]
    assert creates == [], creates
    assert any("describe" in c for c in calls)
    assert "exists:" in result.stdout


def test_the_build_account_gets_cluster_credentials_and_rbac_never_secrets(
    dry_run: tuple[str, list[list[str]]],
) -> None:
    _, commands = dry_run
    build = f"--member=serviceAccount:iris-build@{PROJECT}.iam.gserviceaccount.com"
    roles = {a.split("=", 1)[1] for c in commands if build in c for a in c if a.startswith("--role=")}
    assert "roles/container.clusterViewer" in roles
    assert not {"roles/container.developer", "roles/container.admin", "roles/editor", "roles/owner"} & roles
    assert not any(r.startswith("roles/secretmanager") for r in roles)
    apply = has(commands, "kubectl", "apply")
    assert apply[-1].endswith("build-rbac.yaml")


def test_gateway_address_and_certificate_map_match_the_gateway(tmp_path: Path) -> None:
    gateway = next(d for d in load_yaml_docs(BASE / "gateway.yaml") if d["kind"] == "Gateway")
    address = gateway["spec"]["addresses"][0]["value"]
    certmap = gateway["metadata"]["annotations"]["networking.gke.io/certmap"]
    result, _ = run(tmp_path, "--project", PROJECT, "--dry-run", "--domain", "iris.example.com")
    commands = planned(result.stdout)
    has(commands, "compute", "addresses", "create", address, "--global")
    has(commands, "certificate-manager", "certificates", "create", "iris-cert", "--domains=iris.example.com")
    has(commands, "certificate-manager", "maps", "create", certmap)
    has(commands, "maps", "entries", "create", f"--map={certmap}", "--certificates=iris-cert",
        "--hostname=iris.example.com")  # fmt: skip
    has(commands, "services", "enable", "certificatemanager.googleapis.com")
    without_domain, _ = run(tmp_path, "--project", PROJECT, "--dry-run")
    assert not [c for c in planned(without_domain.stdout) if "certificate-manager" in c]
    assert "the certificate needs --domain" in without_domain.stdout


WRITE_ROLES = {"roles/storage.objectCreator", "roles/storage.objectUser", "roles/storage.objectAdmin",
               "roles/storage.admin", "roles/storage.legacyBucketWriter"}  # fmt: skip


def bucket_grants(stdout: str, commands: list[list[str]]) -> list[tuple[str, str, list[str]]]:
    """(member, role, object prefixes of its condition) for every bucket IAM binding the script plans."""
    conditions = {}
    for line in stdout.splitlines():
        if line.startswith("# condition "):
            title, expression = line.removeprefix("# condition ").split(": ", 1)
            conditions[title] = re.findall(r'/objects/([^"]*)"\)', expression)
    grants = []
    for c in commands:
        if c[:4] == ["gcloud", "storage", "buckets", "add-iam-policy-binding"]:
            flags = dict(a.removeprefix("--").split("=", 1) for a in c if a.startswith("--") and "=" in a)
            title = Path(flags["condition-from-file"]).stem
            grants.append((flags["member"], flags["role"], conditions[title]))
    return grants


def test_only_the_operator_writes_the_evaluation_set(dry_run: tuple[str, list[list[str]]]) -> None:
    stdout, commands = dry_run
    grants = bucket_grants(stdout, commands)
    assert len(grants) == len([c for c in commands if "add-iam-policy-binding" in c and "storage" in c])
    on_eval = {(member.split("@")[0], role) for member, role, prefixes in grants if any("eval/".startswith(p) or
               p.startswith("eval/") for p in prefixes)}  # fmt: skip
    assert on_eval == {("serviceAccount:iris-trainer", "roles/storage.objectViewer")}
    assert all(prefixes for _, _, prefixes in grants), "every bucket grant is limited to prefixes"
    project_roles = [a for c in commands if c[:3] == ["gcloud", "projects", "add-iam-policy-binding"] for a in c]
    assert not [a for a in project_roles if a.startswith("--role=roles/storage")]
    assert not WRITE_ROLES & {role for _, role, prefixes in grants if "eval/" in prefixes}


def test_the_setup_seeds_the_evaluation_set_with_the_signing_key(dry_run: tuple[str, list[list[str]]]) -> None:
    _, commands = dry_run
    seed = has(commands, "-m", "trainer.evalset", "seed")
    assert f"GCS_BUCKET={PROJECT}-iris" in seed
    assert any(a.startswith("MODEL_SIGNING_PRIVATE_KEY_FILE=") and a.endswith("/private-key.pem") for a in seed)
    assert commands.index(seed) > commands.index(has(commands, "kubectl", "create", "secret", "iris-signing-key"))


def test_the_predictor_may_only_create_objects_under_predictions_and_feedback(
    dry_run: tuple[str, list[list[str]]],
) -> None:
    """The prediction log's and feedback's shippers upload create-only: the predictor never overwrites or deletes a
    record file."""
    stdout, commands = dry_run
    writes = {
        (role, tuple(prefixes))
        for member, role, prefixes in bucket_grants(stdout, commands)
        if member.startswith("serviceAccount:iris-predictor@") and role in WRITE_ROLES
    }
    assert writes == {
        ("roles/storage.objectCreator", ("predictions/",)),
        ("roles/storage.objectCreator", ("feedback/date=",)),
    }


def test_the_lifecycle_deletes_old_logs_and_retired_models_never_the_newest(
    dry_run: tuple[str, list[list[str]]],
) -> None:
    stdout, _ = dry_run
    (line,) = [line for line in stdout.splitlines() if line.startswith("# lifecycle: ")]
    rules = {
        tuple(r["condition"]["matchesPrefix"]): r["condition"]
        for r in json.loads(line.removeprefix("# lifecycle: "))["rule"]
    }
    assert set(rules) == {
        ("models/model-",), ("models/claims/",), ("predictions/", "feedback/date="), ("feedback/ledger/",),
    }  # fmt: skip
    assert rules[("models/model-",)] == {"daysSinceCustomTime": 180, "matchesPrefix": ["models/model-"]}
    assert rules[("predictions/", "feedback/date=")]["age"] == 90  # above FEEDBACK_MAX_AGE's 7 days
    assert all(r["action"] == {"type": "Delete"} for r in json.loads(line.removeprefix("# lifecycle: "))["rule"])


def test_the_feedback_joiner_reads_the_logs_and_writes_only_its_csvs_ledger_and_document(
    dry_run: tuple[str, list[list[str]]],
) -> None:
    stdout, commands = dry_run
    trainer = {
        (role, tuple(prefixes))
        for member, role, prefixes in bucket_grants(stdout, commands)
        if member.startswith("serviceAccount:iris-trainer@")
    }
    assert ("roles/storage.objectViewer", ("predictions/", "feedback/")) in trainer
    assert ("roles/storage.objectCreator", ("incoming/feedback-",)) in trainer
    assert ("roles/storage.objectUser", ("feedback/ledger/", "feedback/accuracy.json")) in trainer
    assert not [
        p for role, prefixes in trainer if role in WRITE_ROLES for p in prefixes if p in ("incoming/", "feedback/")
    ]
    assert '"matchesPrefix": ["feedback/ledger/"]' in stdout  # ledgers outlive FEEDBACK_MAX_AGE (at most 30 days)
