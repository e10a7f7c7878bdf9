"""The docs follow the code: the generated reference is current, it names every setting, route and rpc, every
setting has a docstring, the README starts with the two commands and its links into docs/ resolve."""

from __future__ import annotations

import ast
import inspect
import itertools
import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from devstack import reference
from predictor.http.app import create_app
from predictor.settings import PredictorSettings
from tests import keys

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
SETTINGS_CLASSES = reference.settings_classes()
KNOWN = {
    "CommonSettings",
    "TrainerSettings",
    "PredictorSettings",
    "ProxySettings",
    "IngestSettings",
    "BridgeSettings",
    "StackSettings",
}
RENDERED = reference.render()
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_the_checked_in_reference_is_current(name: str) -> None:
    path = DOCS / "reference" / name
    checked_in = path.read_text() if path.exists() else ""
    assert checked_in == RENDERED[name], f"docs/reference/{name} is out of date: run `make docs` and commit it"


def test_discovery_finds_every_deployables_settings_class() -> None:
    assert {cls.__name__ for cls in SETTINGS_CLASSES} >= KNOWN
    for cls in SETTINGS_CLASSES:
        bases = [b for b in cls.__mro__[1:] if b in SETTINGS_CLASSES]
        assert all(SETTINGS_CLASSES.index(b) < SETTINGS_CLASSES.index(cls) for b in bases), cls


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda c: c.__name__)
def test_every_setting_is_in_the_settings_reference(cls: type[BaseSettings]) -> None:
    text = RENDERED["settings.md"]
    section = text.split(f"\n## {cls.__name__}\n", 1)[1].split("\n## ", 1)[0]
    own = {field.env for field in reference.describe(cls).fields}
    missing = [name.upper() for name in cls.model_fields if f"| `{name.upper()}` |" not in text]
    assert missing == []
    assert {name for name in own if f"| `{name}` |" not in section} == set()


def documented_fields(cls: type) -> set[str]:
    """Fields declared with a docstring line right after them, in `cls` and its project base classes."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] not in reference.packages():
            continue
        body = ast.parse(inspect.getsource(klass)).body[0].body  # type: ignore[attr-defined]
        for node, after in itertools.pairwise(body):
            is_doc = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and is_doc:
                names.add(node.target.id)
    return names


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda c: c.__name__)
def test_every_setting_has_a_docstring(cls: type[BaseSettings]) -> None:
    assert set(cls.model_fields) - documented_fields(cls) == set()


def test_every_route_of_the_app_is_in_the_http_reference() -> None:
    settings = PredictorSettings.model_validate({
        **keys.settings(), "storage_emulator_host": "127.0.0.1:9", "admin_token": reference.ADMIN_TOKEN_EXAMPLE,
    })  # fmt: skip
    app = create_app(settings)
    text = RENDERED["http.md"]
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.endswith("static") or rule.rule == "/":
            continue  # the web page and its files: not part of the API document (docs/api.md names the page)
        path = re.sub(r"<(?:\w+:)?(\w+)>", settings.model_name, rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if f"| `{method}` | `{path}` |" not in text:
                missing.append(f"{method} {path}")
    assert missing == []


def test_every_rpc_and_message_of_the_proto_is_in_the_grpc_reference() -> None:
    from predictor.protos import grpc_predict_v2_pb2 as pb

    text = RENDERED["grpc.md"]
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert [m.name for m in service.methods if f"| `{m.name}` |" not in text] == []
    names = [m.full_name.removeprefix("inference.") for m in _messages(pb.DESCRIPTOR.message_types_by_name.values())]
    assert [name for name in names if f"### `{name}`" not in text] == []


def _messages(found: object) -> list:  # type: ignore[type-arg]
    result = []
    for message in found:  # type: ignore[attr-defined]
        if message.GetOptions().map_entry:
            continue
        result.append(message)
        result.extend(_messages(message.nested_types))
    return result


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == ["make run", "make test"]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci


def _pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted(DOCS.rglob("*.md"))]


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved)):
            broken.append(target)
    assert broken == []


def test_the_readme_links_every_page_under_docs() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in LINK.findall(README)}
    assert [p.relative_to(ROOT).as_posix() for p in sorted(DOCS.rglob("*.md")) if p.resolve() not in linked] == []


def test_the_readme_stays_short_and_keeps_benchmark_tables_out() -> None:
    words = len(README.split())
    assert words <= 800, f"README.md has {words} words: move detail into docs/"
    assert "| measure | target | measured |" not in README
    assert "| variable | default |" not in README
