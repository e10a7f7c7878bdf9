"""Hypothesis strategies: training CSVs with known good and bad rows, broken headers and odd encodings."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass

from hypothesis import strategies as st

from core.iris import FEATURES, LABEL

ALIASES = {
    "sepal_length": ["sepal_length", "Sepal Length (cm)", "SepalLengthCm", "sepal.length"],
    "sepal_width": ["sepal_width", "Sepal Width (cm)", "SepalWidthCm", "sepal.width"],
    "petal_length": ["petal_length", "Petal Length (cm)", "PetalLengthCm", "petal.length"],
    "petal_width": ["petal_width", "Petal Width (cm)", "PetalWidthCm", "petal.width"],
    LABEL: ["species", "Species", "class", "variety", "label"],
}
SPECIES = ["setosa", "Iris-versicolor", " VIRGINICA ", "iris_setosa", "Iris virginica"]
BAD_NUMBERS = ["", "abc", "5.1.2", "1e", "--1", "NaN", "inf", "-0.5", "100.5", "1e3", "½", "1\n2", '"q"', "5,1"]
BAD_SPECIES = ["tulip", "", "setosa2", "Iris", "rose", "sétosa", "virginica\nsetosa"]
FIELD_LIMIT = csv.field_size_limit()


@dataclass(frozen=True)
class Sample:
    """A generated CSV and what validation must find in it."""

    content: bytes
    rows: int
    valid: int
    fatal: bool


KINDS = ["valid", "number", "species", "ragged", "extra", "huge"]


def _row(kind: str, seed: int, columns: list[str]) -> tuple[list[str], bool]:
    """One data row of `kind` under `columns` (schema names, "notes" = an ignored column) and whether it is valid.

    Details come from `seed` (two draws per row keep hundreds of examples fast; the kind still shrinks).
    """
    rnd = random.Random(seed)
    values = {name: rnd.choice([repr, "{:.1f}".format, " {:.2f} ".format])(rnd.uniform(0, 100)) for name in FEATURES}
    values[LABEL] = rnd.choice(SPECIES)
    values["notes"] = rnd.choice(["x", "a,b", 'say "hi"', "line\nbreak"])
    if kind == "number":
        values[rnd.choice(FEATURES)] = rnd.choice(BAD_NUMBERS)
    elif kind == "species":
        values[LABEL] = rnd.choice(BAD_SPECIES)
    elif kind == "huge":  # a long field only passes in the ignored column (and only under the csv module's limit)
        target = rnd.choice([*FEATURES, LABEL, "notes"])
        values[target] = "9" * rnd.choice([5_000, 140_000])
        kind = "valid" if target == "notes" else kind
    row = [values[name] for name in columns]
    if kind == "extra":
        row += rnd.choices(["1", "z", ""], k=rnd.randint(1, 3))
    if kind == "ragged":
        last_needed = max(i for i, name in enumerate(columns) if name != "notes")
        row = row[: rnd.randint(1, last_needed)]
    return row, kind in ("valid", "extra")


SCHEMA = [*FEATURES, LABEL]
_ORDER = st.permutations(SCHEMA)
_NOTES_AT = st.one_of(st.none(), st.integers(0, len(SCHEMA)))
_ALIASES = st.tuples(*(st.sampled_from(ALIASES[c]) for c in SCHEMA))
_BROKEN = st.sampled_from([None, None, None, "missing", "duplicate", "garbage"])
_GARBAGE = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), min_size=1, max_size=40)
_ROWS = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 2**32)), max_size=12)
_LINE_END = st.sampled_from(["\n", "\r\n"])
_PREFIX = st.sampled_from(["", "\ufeff", "\n\n", " , \r\n"])


def _header(columns: list[str], aliases: tuple[str, ...], broken: str | None, garbage: str) -> list[str]:
    names = dict(zip(SCHEMA, aliases, strict=True)) | {"notes": "Notes"}
    header = [names[c] for c in columns]
    if broken == "missing":
        header[columns.index(LABEL)] = "unknown"
    elif broken == "duplicate":
        header.append(names[FEATURES[0]])
    elif broken == "garbage":
        header = [garbage]
    return header


@st.composite
def samples(draw: st.DrawFn) -> Sample:
    """A CSV with a possibly aliased, permuted or broken header and a mix of good and bad rows."""
    columns, notes_at, broken = draw(_ORDER), draw(_NOTES_AT), draw(_BROKEN)
    if notes_at is not None:
        columns.insert(notes_at, "notes")
    header = _header(columns, draw(_ALIASES), broken, draw(_GARBAGE) if broken == "garbage" else "")
    rows = [_row(kind, seed, columns) for kind, seed in draw(_ROWS)]
    out = io.StringIO()
    csv.writer(out, lineterminator=draw(_LINE_END)).writerows([header, *(r for r, _ in rows)])
    too_long = any(len(f) > FIELD_LIMIT for r, _ in rows for f in r)
    fatal = broken is not None or not rows or too_long
    return Sample((draw(_PREFIX) + out.getvalue()).encode(), len(rows), sum(ok for _, ok in rows), fatal)
