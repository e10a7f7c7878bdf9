"""The layout's rules, checked: the model lifecycle, the agent, the data plane and the gRPC server never import Flask,
and the gRPC server's modules never import the HTTP package (predictor/http/): what both transports share lives beside
the data plane (predictor.dataplane, predictor.infer_request).

Each module is imported alone in a fresh interpreter (an import in this test process would find Flask already
loaded by other tests); the HTTP rule reads each gRPC module's own import statements.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("predictor/lifecycle", "predictor/agent", "predictor/grpc")
MODULES = sorted(
    ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
    for folder in PACKAGES
    for path in (REPO / folder).glob("*.py")
)
FLASK_FREE = [*MODULES, "predictor.dataplane", "predictor.errors", "predictor.metrics", "predictor.infer_request"]
PROBE = """
import importlib, sys
for module in sys.argv[1:]:
    importlib.import_module(module)
    if "flask" in sys.modules:
        print(module)
        break
"""


def first_to_import_flask(modules: list[str]) -> str:
    """The first of `modules` after whose import Flask is loaded, in one fresh interpreter ("" if none)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *modules], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_rule_covers_every_module_of_both_packages() -> None:
    assert {"predictor.lifecycle.registry", "predictor.lifecycle.follower", "predictor.agent.service",
            "predictor.agent.__main__", "predictor.agent.aspired", "predictor.grpc.service",
            "predictor.grpc.__main__"} <= set(FLASK_FREE)  # fmt: skip


def test_the_lifecycle_the_agent_the_data_plane_and_grpc_do_not_import_flask() -> None:
    assert first_to_import_flask(FLASK_FREE) == ""


def test_the_check_can_fail() -> None:
    assert first_to_import_flask(["predictor.lifecycle.registry", "predictor.http.app"]) == "predictor.http.app"


def http_imports(path: Path) -> list[str]:
    """The import statements of the module at `path` that name predictor.http or one of its modules."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        if any(name == "predictor.http" or name.startswith("predictor.http.") for name in names):
            found.append(ast.unparse(node))
    return found


def test_grpc_does_not_import_the_http_package() -> None:
    modules = sorted((REPO / "predictor" / "grpc").glob("*.py"))
    assert {"service.py", "convert.py", "__main__.py"} <= {path.name for path in modules}
    assert {path.name: http_imports(path) for path in modules if http_imports(path)} == {}


def test_the_http_check_can_fail(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("import predictor.http.app\nfrom predictor import http\nfrom predictor.http import binary\n"
                      "from predictor import infer_request\nimport predictor.httpd\n")  # fmt: skip
    assert http_imports(module) == [
        "import predictor.http.app", "from predictor import http", "from predictor.http import binary"
    ]  # fmt: skip
    assert http_imports(REPO / "predictor" / "http" / "v2.py")
