"""Each deployable's lock (requirements-<extra>.lock) covers what its code imports, and nothing of the others' stacks.

Static: the deployable's modules (and the core/ modules they import at module level) are read with `ast`, every
third-party import is mapped to the distribution that installs it (from the venv's installed files), and that
distribution must be pinned in the lock its image or function is built from. A first-party import inside a function
(`core.settings` reaching `core.unpickle` only where models are loaded) is not followed: it is the code's way of
keeping a dependency out of the processes that do not need it.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.deploy.conftest import ROOT

FIRST_PARTY = ("core", "trainer", "predictor", "functions", "devstack", "tests")
DEPLOYABLES = {"trainer": ("trainer",), "predictor": ("predictor",), "ingest": ("functions",)}
"""Lock name -> the packages its deployable runs (each also carries core/)."""
WEB_STACK = {"flask", "werkzeug", "gunicorn", "functions-framework", "cloudevents", "grpcio-health-checking"}
MODEL_STACK = {"numpy", "scipy", "scikit-learn", "joblib"}


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / f"requirements-{lock}.lock").read_text()
    return {canonicalize_name(name): version for name, version in re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.M)}


@functools.cache
def owners() -> dict[str, str]:
    """Dotted module name -> the distribution that installs it, from every installed distribution's file list."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        for file in dist.files or ():
            if file.suffix not in (".py", ".so") or ".." in file.parts:
                continue
            parts = [*file.parts[:-1], file.name.split(".")[0]]
            found.setdefault(".".join(parts[:-1] if parts[-1] == "__init__" else parts), dist.metadata["Name"])
    return found


def distribution(name: str) -> str | None:
    """The distribution of an imported name (`google.cloud.storage.retry.DEFAULT_RETRY` -> google-cloud-storage)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        owner = owners().get(".".join(parts[:end]))
        if owner:
            return canonicalize_name(owner)
    return None


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(nodes: list[ast.stmt], top_level: bool) -> list[tuple[list[str], bool]]:
    """(candidate names, at module level) of every import, most specific candidate first; TYPE_CHECKING skipped."""
    found: list[tuple[list[str], bool]] = []
    for node in nodes:
        if _is_type_checking(node):
            continue
        if isinstance(node, ast.Import):
            found += [([alias.name], top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [([f"{node.module}.{alias.name}", node.module], top_level) for alias in node.names]
        nested_top = top_level and not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        found += _imports([c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)], nested_top)
    return found


def _module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.is_file()), None)


def third_party_imports(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Imported name -> the files importing it, over `packages` and the first-party modules they import at load."""
    todo = [path for package in packages for path in (ROOT / package).rglob("*.py")]
    seen: set[Path] = set()
    found: dict[str, set[str]] = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for candidates, top_level in _imports(ast.parse(path.read_text()).body, top_level=True):
            head = candidates[0].split(".")[0]
            if head in FIRST_PARTY:
                if top_level:
                    todo += [f for c in candidates if (f := _module_file(c))]
            elif head not in sys.stdlib_module_names and head != "main":
                found.setdefault(candidates[0], set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("lock", sorted(DEPLOYABLES))
def test_the_lock_pins_every_distribution_its_code_imports(lock: str) -> None:
    locked = pins(lock)
    imported = third_party_imports(DEPLOYABLES[lock])
    assert imported, "the scan found no third-party import at all"
    unknown = {name: sorted(files) for name, files in imported.items() if distribution(name) is None}
    assert not unknown, f"imports no installed distribution provides: {unknown}"
    missing = {name: sorted(files)[:3] for name, files in imported.items() if distribution(name) not in locked}
    assert not missing, f"requirements-{lock}.lock lacks the distributions of {missing}"


def test_the_trainer_image_carries_no_web_stack() -> None:
    assert not WEB_STACK & set(pins("trainer"))


def test_the_ingest_function_carries_no_model_or_serving_stack() -> None:
    assert not (MODEL_STACK | {"grpcio", "google-cloud-pubsub", "prometheus-client"}) & set(pins("ingest"))


def test_the_predictor_image_carries_no_function_framework() -> None:
    assert not {"functions-framework", "cloudevents"} & set(pins("predictor"))


@pytest.mark.parametrize("lock", sorted(DEPLOYABLES))
def test_every_lock_pins_the_versions_the_tests_run(lock: str) -> None:
    dev = pins("dev")
    assert {name: dev.get(name) for name in pins(lock)} == pins(lock)


@pytest.mark.parametrize("lock", [*sorted(DEPLOYABLES), "dev"])
def test_each_lock_is_compiled_from_its_extra(lock: str) -> None:
    header = (ROOT / f"requirements-{lock}.lock").read_text().splitlines()[1]
    command = f"uv pip compile pyproject.toml --extra {lock} -o requirements-{lock}.lock --python-version 3.11"
    assert header.strip("# ") == command
    assert "--extra $$extra -o requirements-$$extra.lock" in (ROOT / "Makefile").read_text()
