"""Request validation benchmark: JSON bytes in, validated rows (and the float64 array the model gets) out.

    .venv/bin/python bench/validation_bench.py [--tree PATH] [--repeat 7]

Times what the routes do with a body before the model runs, per request, for /predict (objects and lists), /api and
the V2 infer route, at 1 and 1000 rows (MAX_BATCH_SIZE 1000). `--tree` points at another checkout of this project
to time its code instead; a tree from before predictor.http.contract is timed through its hand-written parser
(`inputs.predict_body` and friends), which is how the table in bench/README.md compares the two.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROWS = (1, 1000)
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
ROW = [5.1, 3.5, 1.4, 0.2]


def bodies(rows: int) -> dict[str, tuple[str, bytes]]:
    named = [dict(zip(FEATURES, ROW, strict=True))] * rows
    tensor = {"name": "x", "shape": [rows, 4], "datatype": "FP64", "data": [v for _ in range(rows) for v in ROW]}
    return {
        "/predict objects": ("predict", json.dumps({"instances": named}).encode()),
        "/predict lists": ("predict", json.dumps({"instances": [ROW] * rows}).encode()),
        "/api": ("api", json.dumps([ROW] * rows if rows > 1 else ROW).encode()),
        "V2 infer (flat FP64)": ("infer", json.dumps({"inputs": [tensor]}).encode()),
    }


def parsers(limit: int) -> dict[str, Callable[[bytes], Any]]:
    """The tree's own path from body bytes to rows, per route kind."""
    try:
        from predictor.http import inputs, v2
    except ImportError:  # a tree from before predictor/http/
        inputs, v2 = importlib.import_module("predictor.inputs"), importlib.import_module("predictor.v2")

    if not hasattr(inputs, "validate"):  # the hand-written parser
        old: Any = inputs
        return {
            "predict": lambda raw: old.predict_body(old.parse_json(raw), limit),
            "api": lambda raw: old.api_body(old.parse_json(raw), limit),
            "infer": lambda raw: v2._rows(old.parse_json(raw)["inputs"], limit, b""),  # type: ignore[attr-defined]
        }
    contract_module: Any
    infer_request: Any
    try:
        from predictor.http import contract as contract_module
        from predictor.http.predict import PREDICT

        try:
            infer_request = importlib.import_module("predictor.infer_request")
        except ImportError:  # a tree from before predictor/infer_request.py
            infer_request = importlib.import_module("predictor.http.infer_request")
    except ImportError:  # a tree from before predictor/http/
        contract_module = importlib.import_module("predictor.contract")
        infer_request = v2
        PREDICT = importlib.import_module("predictor.api").PREDICT
    contract = contract_module.Contract.build(limit)

    def api(raw: bytes) -> Any:
        body = inputs.validate(contract.api, raw)
        return body if type(body[0]) is list else [body]

    return {
        "predict": lambda raw: inputs.rows(inputs.validate(contract.predict, raw, PREDICT)["instances"]),
        "api": api,
        "infer": lambda raw: infer_request.validate(raw, limit)[1],
    }


def per_call(fn: Callable[[], Any], repeat: int) -> float:
    """Best of `repeat` rounds of about 0.2 s each, in microseconds per call."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat, number)) / number * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    run = parsers(max(ROWS))
    print(f"tree {args.tree.resolve()}; Python {platform.python_version()}; load average {os.getloadavg()[0]:.2f}")
    print(f"| {'body':<22} | rows | bytes   | validate (us) | validate + np.array (us) |")
    print(f"|{'-' * 24}|------|---------|---------------|--------------------------|")
    for rows in ROWS:
        for label, (kind, raw) in bodies(rows).items():
            parse = run[kind]
            rows_out = parse(raw)
            assert len(rows_out) == rows, (label, len(rows_out))
            alone = per_call(lambda p=parse, r=raw: p(r), args.repeat)  # type: ignore[misc]
            array = per_call(lambda p=parse, r=raw: np.array(p(r), dtype=np.float64), args.repeat)  # type: ignore[misc]
            print(f"| {label:<22} | {rows:>4} | {len(raw):>7} | {alone:>13.1f} | {array:>24.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
