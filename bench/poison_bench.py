"""Poisoning benchmark: do label-flipping and flooding uploads move the served model, and are good retrains refused?

    .venv/bin/python bench/poison_bench.py [--retrains 250] [--seed 0]

Runs the trainer's own selection (trainer/influence.py: upload share cap, fair row cap, exclusion of files the
serving model contradicts or whose species mix departs sharply), fit, quality gate, the trusted evaluation set's gate
(trainer/evalset.py, on the 150 bundled iris flowers as `make run` and the setup seed it) and publish-time checks in
process, on files as they would lie in data/ (the bundled iris set first). Each attack is offered to the model
trained on iris alone; the served model afterwards (the old one when the candidate was refused) is scored on the
trusted set, the 150 bundled iris flowers, against the model served before. An attack passes when the served
accuracy stays within REGRESSION_TOLERANCE of before, and the table says how: excluded, rejected or published.

Attacks, all uploads of jittered (0.02 cm) versicolor look-alikes (versicolor flowers with petal width >= 1.4):
- flip-N%: 250 look-alikes, N% of them labelled virginica (the rest versicolor);
- diluted: the same 250 inside one upload with 2,500 plausible rows (iris rows, 0.05 cm noise, true labels);
- flood: 40 uploads of 500 look-alikes each, 50% labelled virginica, plus 30 copies of one versicolor row;
- flood, one file: one upload of 200,000 rows: look-alikes, 100% labelled virginica, 20% plausible rows around them.
Then 250 plausible retrains (10-50 rows from iris with 0.05 cm noise, one upload each) run in sequence; a retrain is
refused when its file is excluded or the candidate is rejected.
Exits 1 if an attack moves the served model beyond the tolerance or a plausible retrain is refused.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_iris

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gate_bench import decide  # noqa: E402
from core.iris import CLASSES  # noqa: E402
from trainer import data, evalset, influence, model  # noqa: E402
from trainer.settings import TrainerSettings  # noqa: E402

VERSICOLOR, VIRGINICA = CLASSES.index("versicolor"), CLASSES.index("virginica")


class Trainer:
    """data/ as in-memory files, the served model, and the trainer's run over them."""

    def __init__(self, settings: TrainerSettings, x: np.ndarray, codes: np.ndarray) -> None:
        self.settings, self.files = settings, [influence.FileRows("data/iris.csv", x, codes.astype(np.uint8), 0)]
        self.trusted = evalset.TrustedSet("bench", "bench", x, np.array(CLASSES)[codes])  # as seeded: the 150 iris
        self.served: Any = None
        assert self.run()[0] == "published"

    def upload(self, name: str, x: np.ndarray, codes: np.ndarray) -> None:
        x = np.clip(np.round(x, 2), 0.1, None)
        self.files.append(influence.FileRows(name, x, codes.astype(np.uint8), len(self.files)))

    def run(self) -> tuple[str, str]:
        """(outcome, detail) of one trainer run over every file; a published candidate becomes the served model."""
        reading = data.Reading(list(self.files), {f.name: {} for f in self.files})
        selection = influence.select(reading.files, self.served, self.settings)
        excluded = [n for n in selection.excluded]
        dataset = data.assemble(reading, selection)
        try:
            evaluated = model.fit_and_evaluate(dataset, self.settings)
        except model.InsufficientData as e:
            return "rejected", str(e)
        reason = decide(model.gate, evaluated, self.served, self.settings) if self.served is not None else None
        reason = reason or evalset.gate(evaluated.model, self.served, self.trusted, self.settings).message
        if reason:
            return (
                ("excluded; the rest rejected", f"{len(excluded)} files excluded; {reason}")
                if excluded
                else ("rejected", reason)
            )
        self.served = evaluated.model
        thinned = sum(1 for n, i in selection.used.items() if len(i) < next(f.rows for f in self.files if f.name == n))
        detail = f"{dataset.rows} rows, {thinned} files thinned"
        if excluded:
            first = selection.excluded[excluded[0]].reasons[0]
            return "excluded; the rest published", f"{len(excluded)} files excluded ({first}); {detail}"
        return "published", detail

    def drop(self, count: int) -> None:
        """Forget the newest `count` uploads (the next attack starts from the same data)."""
        del self.files[len(self.files) - count :]


def lookalikes(rng: np.random.Generator, x: np.ndarray, codes: np.ndarray, count: int) -> np.ndarray:
    pool = x[(codes == VERSICOLOR) & (x[:, 3] >= 1.4)]
    return pool[rng.integers(0, len(pool), count)] + rng.normal(0, 0.02, (count, 4))


def plausible(rng: np.random.Generator, x: np.ndarray, codes: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    picks = rng.integers(0, len(x), count)
    return x[picks] + rng.normal(0, 0.05, (count, 4)), codes[picks]


def flipped(rng: np.random.Generator, count: int, share: float) -> np.ndarray:
    codes = np.full(count, VERSICOLOR)
    codes[rng.permutation(count)[: round(count * share)]] = VIRGINICA
    return codes


def attacks(rng: np.random.Generator, x: np.ndarray, c: np.ndarray) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Each attack's uploads: (features, species codes) per file."""
    result: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for share in (0.1, 0.5, 1.0):
        result[f"flip {share:.0%}"] = [(lookalikes(rng, x, c, 250), flipped(rng, 250, share))]
    for share in (0.1, 0.5, 1.0):
        good_x, good_c = plausible(rng, x, c, 2500)
        bad_x, bad_c = lookalikes(rng, x, c, 250), flipped(rng, 250, share)
        result[f"flip {share:.0%}, diluted in 10x good rows"] = [(np.vstack([bad_x, good_x]), np.r_[bad_c, good_c])]
    anchor = x[c == VERSICOLOR][:1].repeat(30, axis=0)
    result["flood: 40 uploads x 500 rows, 50% flipped"] = [
        (np.vstack([lookalikes(rng, x, c, 500), anchor]), np.r_[flipped(rng, 500, 0.5), np.full(30, VERSICOLOR)])
        for _ in range(40)
    ]
    near_x, near_c = plausible(rng, x[c != 0], c[c != 0], 40_000)
    result["flood: one upload of 200,000 rows"] = [
        (np.vstack([lookalikes(rng, x, c, 160_000), near_x]), np.r_[np.full(160_000, VIRGINICA), near_c])
    ]
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--retrains", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = TrainerSettings(
        model_signing_algorithm="hmac-sha256",  # type: ignore[arg-type]
        model_signing_key="bench",  # type: ignore[arg-type]
        split_salt=f"poison-bench-{args.seed}",  # type: ignore[arg-type]
    )
    iris = load_iris()
    x, codes, rng = iris.data, iris.target, np.random.default_rng(args.seed)
    trusted_y = np.asarray(CLASSES)[codes]

    def trusted(fitted: Any) -> float:
        return float(np.mean(fitted.predict(x) == trusted_y))

    tolerance = settings.regression_tolerance
    started = time.monotonic()
    print(f"machine: {platform.machine()}, {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    print(f"tolerance {tolerance} on the trusted set (150 iris flowers); seed {args.seed}")
    print("| attack | rows uploaded | outcome | trusted accuracy before -> served after | within tolerance | detail |")
    print("|---|---:|---|---|---|---|")
    trainer, failures = Trainer(settings, x, codes), 0
    base = trainer.served
    for name, uploads in attacks(rng, x, codes).items():
        trainer.served = base
        before = trusted(base)
        for k, (ux, uc) in enumerate(uploads):
            trainer.upload(f"data/attack-{k}.csv", ux, uc)
        outcome, detail = trainer.run()
        after = trusted(trainer.served)
        ok = after >= before - tolerance
        failures += not ok
        rows = sum(len(u[1]) for u in uploads)
        print(f"| {name} | {rows:,} | {outcome} | {before:.3f} -> {after:.3f} | {'yes' if ok else 'NO'} | {detail} |")
        trainer.drop(len(uploads))
    trainer.served = base
    refused: list[str] = []
    worst = trusted(base)
    for k in range(args.retrains):
        trainer.upload(f"data/retrain-{k:03}.csv", *plausible(rng, x, codes, int(rng.integers(10, 51))))
        outcome, detail = trainer.run()
        if outcome != "published" or "excluded" in detail:
            refused.append(f"retrain {k}: {outcome}: {detail}")
        worst = min(worst, trusted(trainer.served))
    print()
    print("| plausible retrains | refused | rows at the end | lowest trusted accuracy served | seconds |")
    print("|---:|---:|---:|---:|---:|")
    rows = sum(f.rows for f in trainer.files)
    print(f"| {args.retrains} | {len(refused)} | {rows:,} | {worst:.3f} | {time.monotonic() - started:.0f} |")
    for line in refused[:5]:
        print(line)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 1 if failures or refused else 0


if __name__ == "__main__":
    raise SystemExit(main())
