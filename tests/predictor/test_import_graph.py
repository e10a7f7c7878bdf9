"""The layout's rule, checked: the model lifecycle, the agent, the data plane and the gRPC server never import Flask.

Each module is imported alone in a fresh interpreter (an import in this test process would find Flask already
loaded by other tests).
"""

from __future__ import annotations

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
FLASK_FREE = [*MODULES, "predictor.dataplane", "predictor.errors", "predictor.metrics", "predictor.http.infer_request"]
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
