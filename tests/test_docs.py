"""The README documents every setting and starts with the two commands CI and newcomers rely on."""

from __future__ import annotations

import ast
import inspect
import itertools
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from devstack.bridge import BridgeSettings
from devstack.run import StackSettings
from functions.settings import IngestSettings
from predictor.proxy import ProxySettings
from predictor.settings import PredictorSettings
from trainer.settings import TrainerSettings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SETTINGS: list[type[BaseSettings]] = [
    TrainerSettings,
    PredictorSettings,
    ProxySettings,
    IngestSettings,
    StackSettings,
    BridgeSettings,
]


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_every_setting_is_in_the_readme_table(cls: type[BaseSettings]) -> None:
    missing = [name.upper() for name in cls.model_fields if f"`{name.upper()}`" not in README]
    assert missing == []


def documented_fields(cls: type) -> set[str]:
    """Fields declared with a docstring line right after them, in `cls` and its project base classes."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith(("core", "trainer", "predictor", "functions", "devstack")):
            continue
        body = ast.parse(inspect.getsource(klass)).body[0].body  # type: ignore[attr-defined]
        for node, after in itertools.pairwise(body):
            is_doc = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and is_doc:
                names.add(node.target.id)
    return names


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_every_setting_has_a_docstring(cls: type[BaseSettings]) -> None:
    assert set(cls.model_fields) - documented_fields(cls) == set()


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == ["make run", "make test"]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci
