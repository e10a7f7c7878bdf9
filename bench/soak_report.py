"""The soak benchmark's schedule, fault windows, tables and targets: pure functions of what `soak_bench.py` recorded.

Nothing here starts a process or touches the network, so the arithmetic that decides PASS or FAIL is unit-tested
(tests/bench/test_soak_report.py).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

FAULT_KINDS = ("pubsub", "agent", "worker")
"""Pub/Sub emulator restart, SIGKILL of the model agent, SIGKILL of one gunicorn worker."""
DEFAULT_FAULTS = "pubsub:0.3,agent:0.5,worker:0.7"
DROP_P50_S, DROP_MAX_S = 5.0, 10.0
RSS_GROWTH = 0.10
"""Largest RSS growth from start to end of a process that lived through the whole run."""
FILES_SLACK, THREADS_SLACK = 2, 2
"""Open files and threads count as flat when they grew by at most this many (a pool thread or socket in flight)."""
STAND_INS = ("pubsub-emulator", "fake-gcs-server")
"""Emulators of managed services (a JVM's heap grows for minutes): their numbers are shown, not judged."""
P99_SPREAD = 2.0
"""p99 is flat when no window's p99 exceeds this multiple of the median window's, nor the last the first's."""


@dataclass(frozen=True)
class Fault:
    kind: str
    at: float
    """Seconds after the load started."""


@dataclass(frozen=True)
class Event:
    at: float
    kind: str
    """`drop` (a valid CSV), `bad` (a CSV the ingest function quarantines), or a fault kind."""


@dataclass
class Drop:
    name: str
    at: float
    """Seconds after the load started at which the upload returned."""
    seconds: float | None = None
    """Until every worker served a model that learned from it; None: never within the run."""
    version: str = ""
    triggers: set[str] = field(default_factory=set)
    """How the workers came to serve that version (`notification`, `reconcile`, ...)."""
    in_fault: str = ""
    """The fault whose window the drop fell in ('' outside every fault)."""


@dataclass(frozen=True)
class Proc:
    """One process of the stack at one moment."""

    pid: int
    label: str
    rss_mb: float
    files: int
    threads: int


@dataclass(frozen=True)
class Target:
    what: str
    measured: str
    target: str
    ok: bool


def parse_faults(spec: str, duration: float) -> list[Fault]:
    """`pubsub:0.3,agent:0.5` -> faults at those fractions of `duration`; '' or 'none' -> no faults."""
    if spec.strip() in ("", "none"):
        return []
    faults = []
    for part in spec.split(","):
        kind, _, fraction = part.strip().partition(":")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}: one of {', '.join(FAULT_KINDS)}")
        try:
            share = float(fraction)
        except ValueError:
            share = math.nan
        if not 0 < share < 1:
            raise ValueError(f"fault {part.strip()!r}: give kind:share, the share of the run between 0 and 1")
        faults.append(Fault(kind, round(share * duration, 1)))
    return sorted(faults, key=lambda f: f.at)


def schedule(duration: float, drop_every: float, bad_every: float, faults: Sequence[Fault]) -> list[Event]:
    """Valid drops every `drop_every` s from `drop_every` on, bad CSVs every `bad_every` s from `bad_every` on but
    half a drop interval later (never at the same moment as a drop), and the faults; sorted by time, all before the
    end of the run."""
    events = [Event(drop_every * i, "drop") for i in range(1, math.ceil(duration / drop_every))]
    if bad_every > 0:
        events += [Event(bad_every * i + drop_every / 2, "bad") for i in range(1, math.ceil(duration / bad_every))]
    events += [Event(f.at, f.kind) for f in faults]
    return sorted((e for e in events if e.at < duration), key=lambda e: e.at)


def fault_at(t: float, faults: Sequence[Fault], before: float, after: float) -> str:
    """The first fault whose window [at - before, at + after] holds `t`, as `kind@at`; '' when none does."""
    for f in faults:
        if f.at - before <= t <= f.at + after:
            return f"{f.kind}@{f.at:.0f}s"
    return ""


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def p99_flat(p99s: Sequence[float]) -> bool:
    """No window's p99 above P99_SPREAD x the median window's, and the last window not above P99_SPREAD x the first."""
    values = [p for p in p99s if not math.isnan(p)]
    if len(values) < 2:
        return True
    middle = statistics.median(values)
    return max(values) <= P99_SPREAD * middle and values[-1] <= P99_SPREAD * values[0]


def failure_counts(
    failures: Iterable[tuple[float, str]], faults: Sequence[Fault], before: float, after: float
) -> dict[str, list[int]]:
    """cause -> [outside every kill window, inside one] for failures recorded as (seconds when sent, cause); a
    request sent up to `before` s before a fault was in flight when it hit."""
    counts: dict[str, list[int]] = {}
    for at, cause in failures:
        inside = bool(fault_at(at, faults, before, after))
        counts.setdefault(cause, [0, 0])[inside] += 1
    return dict(sorted(counts.items()))


def label(cmdline: Sequence[str]) -> str:
    """A short name for a process of the stack from its command line: `python -m trainer --watch` -> `trainer
    --watch`, `java -jar .../cloud-pubsub-emulator.jar` -> `pubsub-emulator`, `nginx: worker process` -> nginx
    worker, else the program's file name."""
    if not cmdline:
        return "?"
    if len(cmdline) == 1 and ":" in cmdline[0]:  # nginx rewrites its title: "nginx: master process ..."
        name, _, role = cmdline[0].partition(":")
        return f"{name.strip()} {role.split()[0] if role.split() else ''}".strip()
    program = PurePath(cmdline[0]).name
    if (program == "java" and any("pubsub-emulator" in a for a in cmdline)) or {"emulators", "pubsub"} <= set(cmdline):
        return "pubsub-emulator"
    if "-m" in cmdline:
        at = cmdline.index("-m")
        module = cmdline[at + 1] if at + 1 < len(cmdline) else "?"
        flags = [a for a in cmdline[at + 2 :] if a.startswith("--") and a not in ("--source", "--target")]
        return " ".join([module, *flags[:1]]) if module != "functions_framework" else "function"
    return program


def process_rows(start: Sequence[Proc], end: Sequence[Proc]) -> tuple[list[list[str]], list[Target]]:
    """Table rows (start and end of every process) and the targets over processes alive at both moments (same
    PID): RSS growth < RSS_GROWTH, open files and threads within their slack."""
    ends = {p.pid: p for p in end}
    rows, grown, files, threads = [], [], [], []
    for p in start:
        q = ends.get(p.pid)
        judged = not p.label.startswith(STAND_INS)
        if q is None:
            rows.append([p.label, str(p.pid), f"{p.rss_mb:.1f}", "exited", str(p.files), "-", str(p.threads), "-"])
            continue
        growth = (q.rss_mb - p.rss_mb) / p.rss_mb if p.rss_mb else 0.0
        rows.append([p.label, str(p.pid), f"{p.rss_mb:.1f}", f"{q.rss_mb:.1f} ({growth:+.1%})", str(p.files),
                     str(q.files), str(p.threads), str(q.threads)])  # fmt: skip
        if not judged:
            rows[-1][0] += " (not judged)"
            continue
        if growth >= RSS_GROWTH:
            grown.append(f"{p.label} {growth:+.1%}")
        if q.files > p.files + FILES_SLACK:
            files.append(f"{p.label} {p.files}->{q.files}")
        if q.threads > p.threads + THREADS_SLACK:
            threads.append(f"{p.label} {p.threads}->{q.threads}")
    starts = {p.pid for p in start}
    rows += [[q.label, str(q.pid), "new", f"{q.rss_mb:.1f}", "-", str(q.files), "-", str(q.threads)]
             for q in end if q.pid not in starts]  # fmt: skip
    lived = sum(1 for p in start if p.pid in ends and not p.label.startswith(STAND_INS))
    targets = [
        Target(f"RSS growth of the {lived} processes alive at start and end", "; ".join(grown) or "all below",
               f"< {RSS_GROWTH:.0%}", not grown and lived > 0),
        Target("open files of those processes", "; ".join(files) or "flat", f"<= start + {FILES_SLACK}",
               not files and lived > 0),
        Target("threads of those processes", "; ".join(threads) or "flat", f"<= start + {THREADS_SLACK}",
               not threads and lived > 0),
    ]  # fmt: skip
    return rows, targets


def drop_targets(drops: Sequence[Drop]) -> list[Target]:
    """Outside the faults: every drop served, by its notification, p50 and max within bounds; and every drop,
    faults included, served by the end."""
    clean = [d for d in drops if not d.in_fault]
    served = [d.seconds for d in clean if d.seconds is not None]
    unserved = [d.name for d in clean if d.seconds is None]
    by_poll = [d.name for d in clean if d.seconds is not None and d.triggers != {"notification"}]
    p50 = statistics.median(served) if served else math.nan
    worst = max(served) if served else math.nan
    everyone = [d.name for d in drops if d.seconds is None]
    return [
        Target(f"drops outside the faults served by their notification ({len(clean)})",
               f"{len(clean) - len(unserved) - len(by_poll)}/{len(clean)}"
               + (f"; not: {', '.join(unserved + by_poll)}" if unserved or by_poll else ""),
               "all", bool(clean) and not unserved and not by_poll),
        Target("drop -> every worker serving, p50 (outside the faults)", f"{p50:.2f} s", f"< {DROP_P50_S:g} s",
               p50 < DROP_P50_S and not unserved),
        Target("drop -> every worker serving, max (outside the faults)", f"{worst:.2f} s", f"< {DROP_MAX_S:g} s",
               worst < DROP_MAX_S and not unserved),
        Target(f"every drop served by the end, faults included ({len(drops)})",
               f"{len(drops) - len(everyone)}/{len(drops)}" + (f"; never: {', '.join(everyone)}" if everyone else ""),
               "all", not everyone),
    ]  # fmt: skip


def markdown(header: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[int] = ()) -> str:
    """A Markdown table; columns whose index is in `right` are right-aligned."""
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def causes(counter: Counter[str]) -> str:
    return ", ".join(f"{cause} x{n}" for cause, n in sorted(counter.items())) or "-"
