"""The suite's result table: one row per check, printed at session end and written to test-output/faults/."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPORT_PATH = Path("test-output/faults/report.md")
COLUMNS = ("check", "outcome", "requests sent", "failed", "versions seen", "measurement")


@dataclass
class Row:
    """What one check sent, what failed, which model versions answered and one extra measurement."""

    check: str
    nodeid: str = ""
    sent: int = 0
    failed: int = 0
    versions: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    outcome: str = "not run"

    def add_load(self, sent: int, failed: int, versions: list[str]) -> None:
        """Accumulate one load run's counts (a check may run several)."""
        self.sent += sent
        self.failed += failed
        self.versions = sorted(set(self.versions) | set(versions))

    def note(self, text: str) -> None:
        self.extra.append(text)

    def cells(self) -> tuple[str, ...]:
        versions = ", ".join(short(v) for v in self.versions) or "-"
        return (self.check, self.outcome, str(self.sent), str(self.failed), versions, "; ".join(self.extra) or "-")


def short(version: str) -> str:
    """`20261127T093817123456Z` -> `09:38:17.123` (versions in one run share the date)."""
    if len(version) == 22 and version[8] == "T":
        return f"{version[9:11]}:{version[11:13]}:{version[13:15]}.{version[15:18]}"
    return version


def markdown(rows: list[Row], runtime: float) -> str:
    """The table as Markdown, with the folder's runtime."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row.cells()) + " |" for row in rows]
    return "\n".join([f"# Fault and abuse suite ({runtime:.0f} s)", "", *lines, ""])


def write(rows: list[Row], runtime: float, path: Path = REPORT_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(rows, runtime))
    return path
