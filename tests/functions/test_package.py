"""functions/package.sh stages a deployable source folder: main.py + functions/ + core/ + the function's lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_package_stages_an_importable_function_source(tmp_path: Path) -> None:
    out = tmp_path / "function"
    (out / "core").mkdir(parents=True)
    (out / "core" / "stale.py").write_text("raise ImportError('left over from an earlier build')\n")
    (out / "keep.txt").write_text("not ours")

    subprocess.run(["bash", str(REPO / "functions" / "package.sh"), str(out)], check=True, capture_output=True)

    assert (out / "main.py").read_bytes() == (REPO / "functions" / "main.py").read_bytes()
    assert (out / "requirements.txt").read_bytes() == (REPO / "requirements-ingest.lock").read_bytes()
    assert sorted(p.name for p in (out / "core").glob("*.py")) == sorted(p.name for p in (REPO / "core").glob("*.py"))
    assert (out / "keep.txt").exists()
    probe = "import main, core.csvscan, functions.ingest; print(main.ingest_upload.__module__, core.csvscan.__file__)"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=out,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["main", str(out / "core" / "csvscan.py")]
